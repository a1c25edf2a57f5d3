"""Fixtures and hypothesis strategies shared by tests/ and hw_tests/."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume
from hypothesis import strategies as st

from fpga_mpq.errors import BadInput
from fpga_mpq.testing import ROUNDING_MODES, LayerDraw, MlpDraw, QuantSpec, save_mlp

ZOO = Path(__file__).resolve().parent / "tests" / "data" / "qonnx_zoo"  # copied from the public zoo, see SOURCES.md
FUZZ = os.environ.get("MPQ_FUZZ") == "1"  # `make fuzz`: many more examples
MONOTONE_DRAWS = (None, None, "Sigmoid", "Tanh", "HardSigmoid")  # half the quantized layers have none
ACC_BITS = 16  # drawn networks keep accumulators this narrow: qonnx's float32 MatMul stays exact


def pytest_configure(config) -> None:
    """One float code path on every x86 CPU, set before any test loads torch (and inherited by every
    CLI subprocess): MKL and oneDNN pick kernels by CPU (AVX-512 on an Intel Xeon, AVX2 on an AMD
    EPYC) whose float sums differ in the last bits, so a training ends elsewhere. Tests assert what
    holds for any valid result; this also makes one machine's numbers another's. A caller's own
    setting wins."""
    for var, value in (("MKL_CBWR", "AVX2"), ("ONEDNN_MAX_CPU_ISA", "AVX2"), ("ATEN_CPU_CAPABILITY", "avx2")):
        os.environ.setdefault(var, value)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one torch thread each
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    # searches train here, one after another, unless a test asks for Ray: a Ray per test process (and
    # per CLI subprocess) costs seconds to start and keeps its processes on the cores
    os.environ["FPGA_MPQ_RAY_ADDRESS"] = "off"


@pytest.fixture(scope="session")
def zoo() -> Path:
    return ZOO


@pytest.fixture(scope="session")
def default_onnx(tmp_path_factory) -> Path:
    """The default-spec Brevitas MLP (seeded, untrained) exported to QONNX."""
    import torch

    from fpga_mpq.export import export_qonnx_file
    from fpga_mpq.models.net import QuantNet
    from fpga_mpq.models.spec import DEFAULT_SPEC

    torch.manual_seed(0)
    model = QuantNet(DEFAULT_SPEC, 64).eval()
    path = tmp_path_factory.mktemp("default") / "model.onnx"
    export_qonnx_file(model, 64, path)
    return path


@st.composite
def quant_specs(draw, max_bits: int = 16, weight: bool = False, float_scales: bool = False) -> QuantSpec:
    bits = draw(st.integers(1, max(1, max_bits)))
    signed = True if weight else draw(st.booleans())
    narrow = draw(st.booleans()) if bits > 1 else False
    mult = 1.0
    if float_scales and not (signed and bits == 1) and draw(st.booleans()):  # bipolar keeps 2**k
        mult = float(np.float32(draw(st.floats(1.0625, 1.9375))))
    frac = draw(st.integers(-2, bits + 2))
    return QuantSpec(bits, frac, signed, narrow, draw(st.sampled_from(ROUNDING_MODES)), mult)


@st.composite
def mlps(draw, max_units: int = 64, float_scales: bool = False) -> MlpDraw:
    """1-4 layers, widths 1-64, bit-widths 1-16 with accumulators kept within ACC_BITS, a float bias
    (Brevitas' default) or not, BatchNorm or not, a monotone activation before the quantizer or not,
    the last layer quantized or not; with ``float_scales`` about half the quantizers get a non
    power-of-two scale."""
    n_in = draw(st.integers(1, 16))
    inp = draw(quant_specs(max_bits=8, float_scales=float_scales))
    n_layers = draw(st.integers(1, 4))
    quantized_output = draw(st.booleans())
    layers, fan_in, act_bits = [], n_in, inp.bits
    for i in range(n_layers):
        units = draw(st.integers(1, max_units))
        budget = ACC_BITS - act_bits - max(fan_in - 1, 1).bit_length() - 1
        w = draw(quant_specs(max_bits=max(1, min(16, budget)), weight=True, float_scales=float_scales))
        per_channel = draw(st.booleans())
        bias = None
        if draw(st.booleans()):
            frac = inp.frac + w.frac + draw(st.integers(-3, 0))
            bias = QuantSpec(draw(st.integers(2, 8)), frac, True, False, draw(st.sampled_from(ROUNDING_MODES)))
        head = i == n_layers - 1 and not quantized_output
        act = None if head else draw(quant_specs(max_bits=8, float_scales=float_scales))
        relu, batchnorm = (False, False) if head else (draw(st.booleans()), draw(st.booleans()))
        float_bias = draw(st.booleans())
        monotone = None if head else draw(st.sampled_from(MONOTONE_DRAWS))
        layers.append(LayerDraw(units, w, per_channel, bias, relu, act, batchnorm, float_bias, monotone))
        fan_in, act_bits = units, act.bits if act else 0
    return MlpDraw(n_in, inp, tuple(layers), draw(st.integers(0, 2**16)))


def lower(draw: MlpDraw, path: Path):
    """The IR of a drawn network; draws whose requantisation is too wide to tabulate are skipped."""
    from fpga_mpq.ir.from_qonnx import network_from_qonnx

    save_mlp(draw, path)
    try:
        return network_from_qonnx(path)
    except BadInput as e:
        assume("tabulate" not in str(e) and "too many for thresholds" not in str(e))
        raise


@pytest.fixture(scope="session")
def cnn_onnx(tmp_path_factory):
    """A function: a ``CNN_ZOO`` network by name, exported to QONNX once per session and checked
    (Brevitas == qonnx exactly on 200 random images)."""
    from fpga_mpq.export import check_qonnx_equals_brevitas, export_qonnx_file
    from fpga_mpq.testing import brevitas_cnn

    paths: dict[str, Path] = {}

    def export(name: str) -> Path:
        if name not in paths:
            model, shape = brevitas_cnn(name)
            paths[name] = tmp_path_factory.mktemp("cnn") / "m.onnx"
            export_qonnx_file(model, shape, paths[name])
            x = np.random.default_rng(0).normal(0, 1.5, (200, *shape)).astype(np.float32)
            check_qonnx_equals_brevitas(model, paths[name], x)
        return paths[name]

    return export


def interruptible() -> None:
    """``preexec_fn`` for a child the test will Ctrl-C: a suite started in the background (``&``,
    nohup, some CI runners) ignores SIGINT, and a child would inherit that and never see it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
