"""Convolutional networks through HLS C simulation (io_parallel and io_stream) and RTL simulation,
bit for bit against the golden model: every network of ``CNN_ZOO`` (padding, stride, depthwise
groups, max / average / global pools, residual blocks with a strided shortcut, bipolar FINN
CNV-style layers, Brevitas float defaults with BatchNorm, 1-D convolutions, a Concat of two branches)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fpga_mpq import api
from fpga_mpq.errors import BadInput
from fpga_mpq.hls.config import HlsConfig
from fpga_mpq.hls.generate import write_project
from fpga_mpq.ir.network import Conv, Dense, InputQuant, Network, Pool, Reshape, accumulator_type, sum_type
from fpga_mpq.ir.types import FixedType
from fpga_mpq.sim.csim import csim_project, project_digest, random_inputs
from fpga_mpq.testing import CNN_ZOO

# make test simulates the CNV-style network's RTL (conv, max pool, thresholds); make slow the small CNN too
RTL_CASES = (
    pytest.param("small CNN, power-of-two scales, max pool", marks=pytest.mark.slow),
    "FINN CNV-style 1-bit/2-bit",
    pytest.param("inception-style Concat of two branches", marks=pytest.mark.slow),
)


# The residual network's exact thresholds make its IR slow to build; io_stream (the default) keeps it in
# make test, io_parallel runs it in make slow.
PARALLEL_CASES = [pytest.param(n, marks=pytest.mark.slow) if "residual" in n else n for n in CNN_ZOO]


@pytest.mark.parametrize("name", PARALLEL_CASES)
def test_cnn_is_exact_in_c_simulation(cnn_onnx, tmp_path, name):
    api.generate(cnn_onnx(name), tmp_path / "prj", HlsConfig(io="parallel"))
    result = api.csim(tmp_path / "prj", random=1000, seed=1)
    assert result["samples"] == 1000 and result["mismatches"] == 0


RESIDUAL = "residual network, strided 1x1 shortcut"


@pytest.mark.parametrize("name", list(CNN_ZOO))
def test_cnn_is_exact_in_io_stream_which_is_the_default_for_cnns(cnn_onnx, tmp_path, name):
    api.generate(cnn_onnx(name), tmp_path / "prj")  # io left out: a CNN gets io_stream
    meta = json.loads((tmp_path / "prj" / "fpga_mpq.json").read_text())
    assert meta["config"]["io"] == "stream"
    top = (tmp_path / "prj" / "firmware" / "mpq_top.cpp").read_text()
    assert "hls::stream" in top and "mpq::conv_2d" not in top
    if name == RESIDUAL:
        # Block 1's long branch is two padded 3x3 convolutions on 8x8 images: its first output needs
        # 2 rows + 3 pixels of the fork (19), so the shortcut stream (Quant_10's output) holds 19.
        assert "#pragma HLS STREAM variable=layer5_out depth=19" in top
        assert "nnet::pointwise_conv_2d_cl" in top and "nnet::conv_2d_buffer_cl" in top
        assert "FIFO depth rule" in (tmp_path / "prj" / "README.md").read_text()
    result = api.csim(tmp_path / "prj", random=1000, seed=1)
    assert result["samples"] == 1000 and result["mismatches"] == 0


def _conv_pool_network(conv: dict, pool: dict, h: int, w: int) -> Network:
    """(h, w, 4) image -> convolution (``conv``: kernel, strides, pads, groups) -> pool (``pool``:
    op, kernel, strides, pads) -> flatten -> dense to 3; weights and biases random."""
    rng = np.random.default_rng(0)
    u4, w4 = FixedType(False, 4, 2), FixedType(True, 4, 1)
    k, (sh, sw), (pt, pl, pb, pr), groups = conv["kernel"], conv["strides"], conv["pads"], conv["groups"]
    cw, cb = rng.integers(-8, 8, size=(k, k, 4 // groups, 4)), rng.integers(-8, 8, size=4)
    acc = accumulator_type(u4, cw.reshape(-1, 4), w4.frac, cb, w4.frac)
    ch, cw_ = (h + pt + pb - k) // sh + 1, (w + pl + pr - k) // sw + 1
    (kh, kw), (ph, pw), pads = pool["kernel"], pool["strides"], pool["pads"]
    pool_t = acc
    for _ in range((kh * kw).bit_length() if pool["op"] == "sum" else 0):
        pool_t = sum_type(pool_t, pool_t)
    oh, ow = (ch + pads[0] + pads[2] - kh) // ph + 1, (cw_ + pads[1] + pads[3] - kw) // pw + 1
    dw, db = rng.integers(-8, 8, size=(oh * ow * 4, 3)), np.zeros(3, dtype=np.int64)
    layers = (
        Conv("cv", "x", "c", (ch, cw_, 4), u4, cw, w4, cb, w4, acc, (sh, sw), (pt, pl, pb, pr), groups),
        Pool("pl", "c", "p", (oh, ow, 4), acc, pool_t, pool["op"], (kh, kw), (ph, pw), pads),
        Reshape("flat", "p", "f", (oh * ow * 4,), pool_t),
        Dense("dense", "f", "y", (3,), pool_t, dw, w4, db, w4, accumulator_type(pool_t, dw, w4.frac, db, w4.frac)),
    )
    return Network(InputQuant("in", "x", (h, w, 4), u4, True), layers)


STREAM_VARIANTS = {  # kernels and geometries the zoo does not reach
    "depthwise, sum pool 3x3 stride 2 padded": (
        {"kernel": 3, "strides": (1, 1), "pads": (1, 1, 1, 1), "groups": 4},
        {"op": "sum", "kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)}, 7, 6),
    "5x5 conv stride 3x2 uneven pads, hls4ml max pool": (
        {"kernel": 5, "strides": (3, 2), "pads": (2, 1, 0, 2), "groups": 1},
        {"op": "max", "kernel": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0)}, 11, 9),
    "padded strided 1x1, 3x2 sum pool padded below": (
        {"kernel": 1, "strides": (2, 2), "pads": (1, 0, 0, 1), "groups": 1},
        {"op": "sum", "kernel": (3, 2), "strides": (1, 2), "pads": (0, 1, 2, 0)}, 7, 6),
    "max pool 3x3 stride 2 padded (our kernel)": (
        {"kernel": 3, "strides": (1, 1), "pads": (1, 1, 1, 1), "groups": 1},
        {"op": "max", "kernel": (3, 3), "strides": (2, 2), "pads": (1, 0, 1, 1)}, 7, 6),
}  # fmt: skip


@pytest.mark.parametrize("name", list(STREAM_VARIANTS))
def test_stream_kernel_variants_are_exact(tmp_path, name):
    net = _conv_pool_network(*STREAM_VARIANTS[name])
    write_project(net, HlsConfig(io="stream"), tmp_path, "m.onnx")
    result = csim_project(tmp_path, net, random_inputs(net, 300, seed=1), project_digest(tmp_path))
    assert result.samples == 300 and result.mismatches == 0


def _grouped_conv_network(groups: int) -> Network:
    """6x6x4 input, one 3x3 convolution with ``groups`` groups and 4 filters."""
    in_type, w_type = FixedType(False, 4, 2), FixedType(True, 4, 1)
    weight = np.random.default_rng(0).integers(-8, 8, size=(3, 3, 4 // groups, 4))
    bias = np.zeros(4, dtype=np.int64)
    acc = accumulator_type(in_type, weight.reshape(-1, 4), w_type.frac, bias, w_type.frac)
    conv = Conv("Conv_g", "x", "y", (4, 4, 4), in_type, weight, w_type, bias, w_type, acc, (1, 1), (0, 0, 0, 0), groups)
    return Network(InputQuant("in", "x", (6, 6, 4), in_type, True), (conv,))


def test_grouped_conv_that_is_not_depthwise_is_refused_in_io_stream_naming_the_layer(tmp_path):
    with pytest.raises(BadInput, match="layer Conv_g: 2 groups on 4 channels .*use --io parallel"):
        write_project(_grouped_conv_network(2), HlsConfig(io="stream"), tmp_path, "m.onnx")
    write_project(_grouped_conv_network(2), HlsConfig(io="parallel"), tmp_path / "p", "m.onnx")  # still fine


def test_cnn_trace_compares_every_tensor_by_name(cnn_onnx, tmp_path):
    api.generate(cnn_onnx(RESIDUAL), tmp_path / "prj", HlsConfig(io="parallel"))
    summary = api.csim(tmp_path / "prj", random=20, seed=2, trace=True)
    assert len(summary["layers"]) > 15 and summary["first_differing_tensor"] is None


@pytest.mark.rtl
@pytest.mark.parametrize("name", RTL_CASES)
def test_small_cnn_is_exact_in_rtl_simulation(cnn_onnx, tmp_path, name):
    assert api.rtlsim(cnn_onnx(name), tmp_path / "rtl", random=300, seed=3)["mismatches"] == 0
