"""Convolutional networks from Brevitas into the exact IR: channels last (qonnx's
ConvertToChannelsLastAndClean plus our transpose passes), Conv with padding, stride, groups and
bias, max / average / global pools, residual Adds, a flatten folded into the dense weights.

For each network of ``CNN_ZOO``: Brevitas == qonnx exactly, and the golden model == qonnx. Chains
executed by tabulation agree bit for bit; a chain on an accumulator too wide to tabulate gets
exact rational thresholds, which differ from qonnx's float32 BatchNorm where it rounds across a
boundary (measured: the residual network, 2 of 2,000 samples).
"""

from __future__ import annotations

import numpy as np
import pytest

from fpga_mpq.export import execute_qonnx
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.golden import run
from fpga_mpq.ir.network import Add, Conv, Pool
from fpga_mpq.sim.csim import random_inputs
from fpga_mpq.testing import CNN_ZOO, head_integers

SAMPLE_BOUND = 0.005  # share of samples whose output may differ (qonnx's float32 BatchNorm)


@pytest.mark.parametrize("name", list(CNN_ZOO))
def test_golden_equals_qonnx_on_the_cnn_zoo(cnn_onnx, name):
    path = cnn_onnx(name)
    net = network_from_qonnx(path)
    x = random_inputs(net, 2000, seed=1)
    ref = execute_qonnx(path, x).astype(np.float64)
    trace = run(net, x)
    if net.head_scale is not None:
        differs = head_integers(net, ref) != trace.result
    else:
        differs = trace.output.astype(np.float32) != ref.astype(np.float32)
    assert differs.any(axis=1).mean() <= SAMPLE_BOUND, f"{name}: {int(differs.any(axis=1).sum())} of {len(x)}"


def test_the_cnn_zoo_exercises_every_spatial_layer():
    kinds = {type(m).__name__ for build, _ in CNN_ZOO.values() for m in build().modules()}
    assert {"QuantConv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d"} <= kinds


def test_conv_layers_keep_stride_padding_and_groups(cnn_onnx):
    net = network_from_qonnx(cnn_onnx("depthwise-separable block, strided, global average"))
    convs = [la for la in net.layers if isinstance(la, Conv)]
    assert [(c.strides, c.pads, c.groups) for c in convs] == [
        ((2, 2), (1, 1, 1, 1), 1),
        ((1, 1), (1, 1, 1, 1), 8),
        ((1, 1), (0, 0, 0, 0), 1),
    ]
    assert [c.shape for c in convs] == [(5, 5, 8), (5, 5, 8), (5, 5, 12)]
    (pool,) = [la for la in net.layers if isinstance(la, Pool)]
    assert pool.op == "sum" and pool.kernel == (5, 5) and pool.shape == (1, 1, 12)


def test_residual_blocks_add_two_branches(cnn_onnx):
    net = network_from_qonnx(cnn_onnx("residual network, strided 1x1 shortcut"))
    adds = [la for la in net.layers if isinstance(la, Add)]
    assert [a.shape for a in adds] == [(8, 8, 8), (4, 4, 16)]


def test_hls_estimate_costs_each_conv_per_output_pixel(cnn_onnx):
    from fpga_mpq.estimate.hls import estimate_hls
    from fpga_mpq.estimate.model import EstimateConfig
    from fpga_mpq.estimate.parts import find_part

    net = network_from_qonnx(cnn_onnx("depthwise-separable block, strided, global average"))
    est = estimate_hls(net, EstimateConfig(find_part("xczu9eg")))
    convs = [la for la in est.layers if la.kind == "conv"]
    assert [la.detail["output_pixels"] for la in convs] == [25, 25, 25]
    assert all(la.cost.lut > 0 for la in convs)
    assert [la.kind for la in est.layers if la.kind.endswith("pool")] == ["sumpool"]
