"""HLS generation: exact constants, reproducible bytes, checked options."""

from __future__ import annotations

import filecmp
from fractions import Fraction

import pytest

from fpga_mpq import api
from fpga_mpq.errors import BadInput
from fpga_mpq.hls.config import HlsConfig
from fpga_mpq.hls.generate import exact_decimal


@pytest.mark.parametrize(("m", "frac"), [(0, 3), (5, 0), (-3, 2), (7, 4), (-1, 12), (3, -2), (123456789, 20)])
def test_exact_decimal_is_the_exact_value(m, frac):
    assert Fraction(exact_decimal(m, frac)) == Fraction(m) / Fraction(2) ** frac


def _tree(path):
    return sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file())


def test_same_inputs_give_a_byte_identical_project(default_onnx, tmp_path):
    api.generate(default_onnx, tmp_path / "a")
    api.generate(default_onnx, tmp_path / "b")
    files = _tree(tmp_path / "a")
    assert files == _tree(tmp_path / "b")
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert not mismatch and not errors
    assert str(tmp_path) not in (tmp_path / "a" / "README.md").read_text()


def test_project_holds_what_a_vendor_user_needs(default_onnx, tmp_path):
    api.generate(default_onnx, tmp_path / "p", HlsConfig(backend="vivado", part="xc7z020clg400-1", clock_ns=10.0))
    p = tmp_path / "p"
    for name in [
        "build_vivado_hls.tcl",
        "build_vitis_hls.tcl",
        "Makefile",
        "README.md",
        "tb/tb.cpp",
        "tb/inputs.txt",
        "tb/golden_outputs.txt",
        "firmware/mpq_top.cpp",
        "firmware/parameters.h",
        "firmware/ap_types/ap_fixed.h",
        "firmware/nnet_utils/nnet_dense.h",
    ]:
        assert (p / name).is_file(), name
    tcl = (p / "build_vivado_hls.tcl").read_text()
    assert "set_part xc7z020clg400-1" in tcl and "create_clock -period 10.0" in tcl
    assert "csim_design" in tcl and "csynth_design" in tcl and "cosim_design" in tcl and "export_design" in tcl
    defines = (p / "firmware" / "defines.h").read_text()
    assert "typedef ap_ufixed<8,0,AP_RND_CONV,AP_SAT> input_t;" in defines
    assert "auto" not in defines


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clock_ns": 0}, "must be a number from 0.1 to"),
        ({"reuse_factor": 0}, "must be a positive integer"),
        ({"backend": "quartus"}, "not one of"),
        ({"io": "axi"}, "not supported"),
        ({"top": "my-top"}, "not a C identifier"),
    ],
)
def test_bad_options_are_rejected_when_the_config_is_made(options, message):
    with pytest.raises(BadInput, match=message):
        HlsConfig(**options)


def test_a_reuse_factor_that_does_not_divide_a_layer_is_rejected_and_nothing_is_written(default_onnx, tmp_path):
    with pytest.raises(BadInput, match="does not divide layer"):
        api.generate(default_onnx, tmp_path / "p", HlsConfig(reuse_factor=3))
    assert list(tmp_path.iterdir()) == []


def _depthwise_network():
    """6x6x4 image -> depthwise 3x3 (pad 1) -> sum pool 2x2 stride 1 -> flatten -> dense 100x2."""
    import numpy as np

    from fpga_mpq.ir.network import Conv, Dense, InputQuant, Network, Pool, Reshape, accumulator_type, sum_type
    from fpga_mpq.ir.types import FixedType

    rng = np.random.default_rng(0)
    u4, w4 = FixedType(False, 4, 2), FixedType(True, 4, 1)
    cw, cb = rng.integers(-8, 8, size=(3, 3, 1, 4)), np.zeros(4, dtype=np.int64)
    acc = accumulator_type(u4, cw.reshape(9, 4), w4.frac, cb, w4.frac)
    pool_t = sum_type(sum_type(acc, acc), sum_type(acc, acc))
    dw, db = rng.integers(-8, 8, size=(100, 2)), np.zeros(2, dtype=np.int64)
    d_acc = accumulator_type(pool_t, dw, w4.frac, db, w4.frac)
    layers = (
        Conv("dw", "x", "c", (6, 6, 4), u4, cw, w4, cb, w4, acc, (1, 1), (1, 1, 1, 1), 4),
        Pool("sum", "c", "p", (5, 5, 4), acc, pool_t, "sum", (2, 2), (1, 1), (0, 0, 0, 0)),
        Reshape("flat", "p", "f", (100,), pool_t),
        Dense("dense", "f", "y", (2,), pool_t, dw, w4, db, w4, d_acc),
    )
    return Network(InputQuant("in", "x", (6, 6, 4), u4, True), layers)


def test_a_cnn_defaults_to_io_stream_with_line_buffers_and_an_mlp_to_io_parallel(tmp_path, default_onnx):
    from fpga_mpq.hls.generate import write_project

    net = _depthwise_network()
    assert HlsConfig().resolved(net).io == "stream"
    write_project(net, HlsConfig(), tmp_path / "cnn", "m.onnx")
    top = (tmp_path / "cnn" / "firmware" / "mpq_top.cpp").read_text()
    assert "nnet::zeropad2d_cl<input_pack_t, input_pack_t, config2_pad>(x, layer2_pad)" in top
    assert "nnet::depthwise_conv_2d_buffer_cl<input_pack_t, layer2_pack_t, config2>(layer2_pad, layer2_out" in top
    assert "mpq::pool_2d_stream<layer2_pack_t, layer3_pack_t, config3>" in top  # exact sum, not hls4ml's average
    assert "nnet::dense<layer3_pack_t, layer5_pack_t, config5>(layer3_out, y, w5, b5)" in top  # flatten: no code
    defines = (tmp_path / "cnn" / "firmware" / "defines.h").read_text()
    assert "typedef nnet::array<input_t, 4> input_pack_t;" in defines
    assert (tmp_path / "cnn" / "firmware" / "mpq_pool_stream.h").is_file()
    api.generate(default_onnx, tmp_path / "mlp")
    assert '"io": "parallel"' in (tmp_path / "mlp" / "fpga_mpq.json").read_text()
