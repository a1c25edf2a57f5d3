"""A Brevitas model with per-channel weight scales and BatchNorm: Brevitas == qonnx == golden == C-sim."""

from __future__ import annotations

import numpy as np
import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerChannelFixedPointMSE,
    Int16Bias,
    Uint8ActPerTensorFixedPoint,
)
from torch import nn

from fpga_mpq import api
from fpga_mpq.export import check_qonnx_equals_brevitas, export_qonnx_file
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.ir.network import Threshold
from fpga_mpq.sim.csim import random_inputs


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=6, return_quant_tensor=True),
        QuantLinear(16, 24, bias=False, weight_quant=Int8WeightPerChannelFixedPointMSE, weight_bit_width=5),
        nn.BatchNorm1d(24),
        QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4, return_quant_tensor=True),
        QuantLinear(
            24,
            5,
            bias=True,
            weight_quant=Int8WeightPerChannelFixedPointMSE,
            weight_bit_width=4,
            bias_quant=Int16Bias,
            return_quant_tensor=True,
        ),
        QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=8),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(30):  # move BatchNorm statistics and scales away from their initial values
        loss = model(torch.randn(64, 16)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_batchnorm_and_per_channel_weights_are_bit_exact_end_to_end(tmp_path):
    model = _model()
    export_qonnx_file(model, 16, tmp_path / "m.onnx")
    net = network_from_qonnx(tmp_path / "m.onnx")
    assert any(isinstance(layer, Threshold) for layer in net.layers)  # BatchNorm + ReLU + Quant
    x = random_inputs(net, 2000, seed=8)
    qonnx_out = check_qonnx_equals_brevitas(model, tmp_path / "m.onnx", x)
    assert np.array_equal(run(net, x).output.astype(np.float32), qonnx_out)
    api.generate(tmp_path / "m.onnx", tmp_path / "prj")
    assert api.csim(tmp_path / "prj", random=2000, seed=8)["mismatches"] == 0
