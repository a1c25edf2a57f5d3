"""The Brevitas MLPs users write, from the quantizer presets: float or power-of-two scales, per
tensor or per channel, BatchNorm between a Linear and its activation, with or without bias, with
an output quantizer or an unquantized head, at several widths.

For each: Brevitas == qonnx exactly; the golden model == qonnx (a quantized output bit for bit,
an unquantized head by the rule round(qonnx / scale) == the hardware's integer), except where
qonnx's float32 arithmetic crosses a rounding boundary that exact arithmetic does not (a measured
bound, at most 0.2 % of outputs); C simulation == golden model, 0 mismatches on 2000 random inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fpga_mpq import api
from fpga_mpq.export import check_qonnx_equals_brevitas, execute_qonnx, export_qonnx_file
from fpga_mpq.hls.generate import HlsConfig
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.sim.csim import random_inputs

N_IN, N_HID, N_OUT = 16, 24, 10
FLOAT32_BOUND = 0.002  # measured share of outputs where qonnx's float32 crosses a rounding boundary


@dataclass(frozen=True)
class Case:
    weight: str = "Int8WeightPerTensorFloat"
    act: str = "Uint8ActPerTensorFloat"
    act_module: str = "QuantReLU"
    bias: str | None = "Int32Bias"
    batchnorm: bool = True
    out: str | None = None  # output QuantIdentity preset; None: the unquantized head
    bits: int | None = None  # overrides weight and activation widths
    io: str = "parallel"


CASES = {
    "float defaults, BatchNorm, unquantized head": Case(),
    "float defaults, BatchNorm, output quantizer": Case(out="Int8ActPerTensorFloat"),
    "per-channel float weights": Case(weight="Int8WeightPerChannelFloat"),
    "power-of-two scales": Case(
        weight="Int8WeightPerTensorFixedPoint", act="Uint8ActPerTensorFixedPoint", out="Int8ActPerTensorFixedPoint"
    ),
    "no bias, no BatchNorm, signed activations": Case(
        bias=None, batchnorm=False, act="Int8ActPerTensorFloat", act_module="QuantIdentity"
    ),
    "HardTanh activations": Case(act="Int8ActPerTensorFloatMinMaxInit", act_module="QuantHardTanh"),
    "Int8Bias": Case(bias="Int8Bias", out="Int8ActPerTensorFloat"),
    "2-bit": Case(bits=2, out="Int8ActPerTensorFloat"),
    "4-bit, stream": Case(bits=4, io="stream"),
    "ternary weights": Case(weight="SignedTernaryWeightPerTensorConst", out="Int8ActPerTensorFloat"),
    "MSE scales": Case(weight="Int8WeightPerTensorFloatMSE", act="Uint8ActPerTensorFloatMSE"),
}


def _module(case: Case) -> nn.Module:
    import brevitas.quant as bq
    from brevitas import nn as qnn

    bits = {} if case.bits is None else {"bit_width": case.bits}
    wbits = {} if case.bits is None else {"weight_bit_width": case.bits}
    minmax = {"min_val": -2.0, "max_val": 2.0} if case.act_module == "QuantHardTanh" else {}

    def linear(n_in: int, n_out: int) -> nn.Module:
        bias = {"bias_quant": getattr(bq, case.bias)} if case.bias else {}
        return qnn.QuantLinear(
            n_in, n_out, bias=case.bias is not None, weight_quant=getattr(bq, case.weight), **bias, **wbits
        )

    act = getattr(qnn, case.act_module)(act_quant=getattr(bq, case.act), return_quant_tensor=True, **bits, **minmax)
    layers = [
        qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFloat, return_quant_tensor=True),
        linear(N_IN, N_HID),
        *([nn.BatchNorm1d(N_HID)] if case.batchnorm else []),
        act,
        linear(N_HID, N_OUT),
    ]
    if case.out:
        layers.append(qnn.QuantIdentity(act_quant=getattr(bq, case.out)))
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.5)  # some negative gains: falling thresholds
                m.bias.normal_(0, 0.3)
    model.train()
    with torch.no_grad():
        for _ in range(310):  # past Brevitas' statistics collection, so every scale is a parameter
            model(torch.randn(16, N_IN) * 1.5)
    return model.eval()


@pytest.mark.parametrize("name", list(CASES))
def test_brevitas_preset_mlp_is_exact_through_c_simulation(tmp_path, name):
    case = CASES[name]
    torch.manual_seed(0)
    model = _module(case)
    onnx_path = tmp_path / "m.onnx"
    export_qonnx_file(model, N_IN, onnx_path)
    x = np.random.default_rng(0).normal(0, 1.5, (500, N_IN)).astype(np.float32)
    check_qonnx_equals_brevitas(model, onnx_path, x)

    net = network_from_qonnx(onnx_path)
    xr = random_inputs(net, 2000, seed=1)
    ref = execute_qonnx(onnx_path, xr).astype(np.float64)
    trace = run(net, xr)
    if net.head_scale is not None:  # the hardware's integer, read back from qonnx's float32 output
        scale = np.array([float(s) for s in net.head_scale])
        differing = int((np.round(ref / scale) != trace.result).sum())
    else:
        differing = int((trace.output.astype(np.float32) != ref.astype(np.float32)).sum())
    assert differing <= FLOAT32_BOUND * ref.size, f"{differing} of {ref.size}"

    api.generate(onnx_path, tmp_path / "prj", HlsConfig(io=case.io))
    assert api.csim(Path(tmp_path / "prj"), random=2000, seed=1)["mismatches"] == 0
