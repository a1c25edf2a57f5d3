"""Brevitas' default float-scale quantizers (per-tensor and per-channel).

Float scales are handled in exact rational arithmetic (QONNX's real-number semantics) and folded
into integer thresholds, so golden model == C simulation bit for bit. Brevitas and qonnx compute
the same graph in float32, rounding each product and partial sum in an order of their own; where
that rounding crosses a quantizer's rounding boundary they differ from the exact result by one
step. This test bounds how often (measured: 1 of 3,600 test-set outputs, 0 of 20,000 random).
"""

from __future__ import annotations

import numpy as np
import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Int32Bias,
    Uint8ActPerTensorFloat,
)
from torch import nn

from fpga_mpq import api
from fpga_mpq.data import load_split
from fpga_mpq.export import check_qonnx_equals_brevitas, execute_qonnx, export_qonnx_file
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.sim.csim import random_inputs


def _trained_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True),
        QuantLinear(64, 32, weight_quant=Int8WeightPerTensorFloat, bias_quant=Int32Bias, return_quant_tensor=True),
        QuantReLU(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
        QuantLinear(32, 10, weight_quant=Int8WeightPerChannelFloat, bias_quant=Int32Bias, return_quant_tensor=True),
        QuantIdentity(act_quant=Int8ActPerTensorFloat),
    )
    split = load_split()
    x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):  # enough for every learned scale to leave its power-of-two start
        idx = torch.randint(0, len(x), (64,), generator=gen)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _one_step_flips(exact: np.ndarray, framework: np.ndarray, step: float) -> int:
    """Count differences; every one must be a single quantization step (a rounding-boundary flip)."""
    diff = np.abs(exact.astype(np.float64) - framework.astype(np.float64))[exact != framework]
    assert np.allclose(diff, step, rtol=1e-6), diff
    return len(diff)


def test_default_float_scale_quantizers_are_exact_in_c_simulation(tmp_path):
    model = _trained_model()
    export_qonnx_file(model, 64, tmp_path / "m.onnx")
    net = network_from_qonnx(tmp_path / "m.onnx")
    step = float(net.postprocess[0].const)  # the output quantizer's float scale
    test = load_split().x_test
    qonnx_test = check_qonnx_equals_brevitas(model, tmp_path / "m.onnx", test)  # float32 twins
    assert _one_step_flips(run(net, test).output.astype(np.float32), qonnx_test, step) <= 0.001 * qonnx_test.size
    x = random_inputs(net, 2000, seed=9)
    qonnx_random = execute_qonnx(tmp_path / "m.onnx", x)
    assert _one_step_flips(run(net, x).output.astype(np.float32), qonnx_random, step) <= 0.001 * qonnx_random.size
    api.generate(tmp_path / "m.onnx", tmp_path / "prj")
    assert api.csim(tmp_path / "prj")["mismatches"] == 0
    assert api.csim(tmp_path / "prj", random=2000, seed=9)["mismatches"] == 0
