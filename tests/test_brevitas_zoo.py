"""The Brevitas zoo: Brevitas == qonnx exactly, and the golden model == qonnx (make test: cases that
hold every value of every factor; make fuzz: every case).

Quantized outputs are compared bit for bit; an unquantized head by the rule
``round(qonnx / head_scale) == the hardware's integer``. Where qonnx's float32 arithmetic crosses a
rounding boundary that exact arithmetic does not, outputs may differ: a measured bound
(FLOAT32_BOUND of all outputs), never a tolerance on values. C simulation: hw_tests/test_brevitas_presets.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FUZZ
from fpga_mpq.errors import BadInput
from fpga_mpq.export import check_qonnx_equals_brevitas, execute_qonnx, export_qonnx_file
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.sim.csim import random_inputs
from fpga_mpq.testing import (
    BREVITAS_ZOO,
    N_IN,
    REFUSED_PRESETS,
    ZOO_FACTORS,
    BrevitasCase,
    brevitas_mlp,
    each_value,
    head_integers,
)

FLOAT32_BOUND = 0.002  # measured share of outputs where qonnx's float32 crosses a rounding boundary
# make test: cases holding every value of every factor; make fuzz: the whole pairwise zoo
CASES = BREVITAS_ZOO if FUZZ else each_value(BREVITAS_ZOO, ZOO_FACTORS)


def golden_differs_from_qonnx(net, path, x) -> int:
    """Outputs where the golden model and qonnx disagree (by the rule for the network's head)."""
    ref = execute_qonnx(path, x).astype(np.float64)
    trace = run(net, x)
    if net.head_scale is None:
        return int((trace.output.astype(np.float32) != ref.astype(np.float32)).sum())
    scale = np.array([float(s) for s in net.head_scale])
    same = head_integers(net, ref) == trace.result
    # where the integers agree, the host's float32 output is qonnx's up to float32 rounding: within a
    # hundredth of one integer step (qonnx's float32 sums round; the integer does not)
    err = np.abs(trace.output - ref)
    assert np.all(err[same] <= (0.01 * scale + 1e-5 * np.abs(ref))[same])
    return int((~same).sum())


def export_case(case: BrevitasCase, path) -> None:
    model = brevitas_mlp(case)
    export_qonnx_file(model, N_IN, path)
    check_qonnx_equals_brevitas(model, path, np.random.default_rng(0).normal(0, 1.5, (500, N_IN)).astype(np.float32))


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_brevitas_zoo_case_golden_equals_qonnx(tmp_path, case):
    export_case(case, tmp_path / "m.onnx")
    net = network_from_qonnx(tmp_path / "m.onnx")
    x = random_inputs(net, 2000, seed=1)
    differing = golden_differs_from_qonnx(net, tmp_path / "m.onnx", x)
    assert differing <= FLOAT32_BOUND * len(x) * net.n_out, f"{differing} of {len(x) * net.n_out}"


@pytest.mark.parametrize("preset", list(REFUSED_PRESETS))
def test_a_preset_that_cannot_be_exact_is_refused_with_the_reason(tmp_path, preset):
    export_case(BrevitasCase(weight=preset), tmp_path / "m.onnx")
    with pytest.raises(BadInput, match=REFUSED_PRESETS[preset]):
        network_from_qonnx(tmp_path / "m.onnx")
