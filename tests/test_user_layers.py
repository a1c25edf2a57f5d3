"""Layers users bring from Brevitas (issue 24): the default float bias, monotone activations before a
quantizer, 1-D convolutions and pools, and Concat. The pairwise
zoo (tests/test_brevitas_zoo.py) draws the float bias and the activations in every combination."""

from __future__ import annotations

import brevitas.quant as bq
import numpy as np
import pytest
import torch
from brevitas import nn as qnn
from torch import nn

from fpga_mpq.export import execute_qonnx, export_qonnx_file
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.ir.network import Concat, Conv, Threshold
from fpga_mpq.sim.csim import random_inputs
from fpga_mpq.testing import FLOAT_BIAS, N_IN, BrevitasCase, brevitas_cnn, brevitas_mlp, head_integers


def _export(model, shape, path):
    model.train()
    with torch.no_grad():
        for _ in range(20):
            model(torch.randn(4, *shape))
    export_qonnx_file(model.eval(), shape if len(shape) > 1 else shape[0], path)
    return path


@pytest.mark.parametrize("bias", [FLOAT_BIAS, "Int8BiasPerTensorFloatInternalScaling"])
def test_a_bias_off_the_heads_grid_is_added_by_the_host_after_the_exact_accumulator(tmp_path, bias):
    path = tmp_path / "m.onnx"
    export_qonnx_file(brevitas_mlp(BrevitasCase(bias=bias, out=None)), N_IN, path)
    net = network_from_qonnx(path)
    assert net.head_bias is not None and len(net.head_bias) == net.n_out
    assert [op.op for op in net.postprocess] == ["Mul", "Add"]
    assert not net.layers[-1].bias.any(), "the float bias stays off the hardware's integer sum"
    x = random_inputs(net, 1000, seed=1)
    ref = execute_qonnx(path, x)
    trace = run(net, x)
    assert np.array_equal(head_integers(net, ref), trace.result)
    assert np.allclose(trace.output, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("act", ["Sigmoid", "Tanh", "Hardsigmoid"])
def test_a_monotone_activation_before_its_quantizer_becomes_an_exact_threshold(tmp_path, act):
    path = tmp_path / "m.onnx"
    case = BrevitasCase(act="Int8ActPerTensorFloat", bias=FLOAT_BIAS, monotone=act, bits=4)
    export_qonnx_file(brevitas_mlp(case), N_IN, path)
    net = network_from_qonnx(path)
    assert any(isinstance(la, Threshold) for la in net.layers)
    x = random_inputs(net, 1000, seed=1)
    assert np.array_equal(head_integers(net, execute_qonnx(path, x)), run(net, x).result)


def test_1d_convolutions_and_pools_become_2d_layers_on_one_row(tmp_path):
    model, shape = brevitas_cnn("1-D convolutions and pools, float defaults")
    path = tmp_path / "m.onnx"
    export_qonnx_file(model, shape, path)
    net = network_from_qonnx(path)
    assert net.input.model_shape == (4, 1, 32)
    convs = [la for la in net.layers if isinstance(la, Conv)]
    assert [c.weight.shape[:2] for c in convs] == [(1, 3), (1, 3)] and convs[1].strides == (1, 2)
    x = random_inputs(net, 1000, seed=1)
    assert np.array_equal(head_integers(net, execute_qonnx(path, x)), run(net, x).result)


class Branches(nn.Module):
    """Two dense branches of one quantized input at different widths, concatenated (``torch.cat``);
    power-of-two scales (two float scales side by side cannot feed one integer dense layer)."""

    def __init__(self) -> None:
        super().__init__()
        w, a = bq.Int8WeightPerTensorFixedPoint, bq.Uint8ActPerTensorFixedPoint
        self.q = qnn.QuantIdentity(act_quant=bq.Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.a = qnn.QuantLinear(8, 4, weight_quant=w, weight_bit_width=4)
        self.b = qnn.QuantLinear(8, 6, weight_quant=w, weight_bit_width=4)
        self.act_a, self.act_b = qnn.QuantReLU(act_quant=a, bit_width=4), qnn.QuantReLU(act_quant=a, bit_width=6)
        self.head = qnn.QuantLinear(10, 3, weight_quant=w, weight_bit_width=4)

    def forward(self, x):
        x = self.q(x)
        return self.head(torch.cat([self.act_a(self.a(x)), self.act_b(self.b(x))], dim=1))


def test_a_concat_of_two_dense_branches_is_one_exact_layer(tmp_path):
    path = _export(Branches(), (8,), tmp_path / "m.onnx")
    net = network_from_qonnx(path)
    (concat,) = [la for la in net.layers if isinstance(la, Concat)]
    assert concat.shape == (10,)
    x = random_inputs(net, 1000, seed=1)
    assert np.array_equal(head_integers(net, execute_qonnx(path, x)), run(net, x).result)


class Named(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QuantIdentity(return_quant_tensor=True)
        self.layers = nn.Sequential(qnn.QuantLinear(16, 8), nn.BatchNorm1d(8), qnn.QuantReLU(return_quant_tensor=True))
        self.head = qnn.QuantLinear(8, 4)

    def forward(self, x):
        return self.head(self.layers(self.inp(x)))


def test_the_estimate_table_names_each_layer_after_the_users_module(tmp_path):
    from brevitas.export import export_qonnx

    from fpga_mpq import api
    from fpga_mpq.estimate.report import table

    model = Named().train()
    with torch.no_grad():
        for _ in range(20):
            model(torch.randn(4, 16))
    export_qonnx(model.eval(), input_t=torch.zeros(1, 16), export_path=str(tmp_path / "m.onnx"))  # Brevitas as is
    assert set(dict(network_from_qonnx(tmp_path / "m.onnx").modules).values()) >= {"layers.0", "head"}
    data = api.estimate(tmp_path / "m.onnx", out=tmp_path / "est")
    assert [la.get("module") for la in data["layers"]] == ["layers.0", "layers.1", "head"]
    assert "layers.0 (" in table(data) and "head (" in table(data)
