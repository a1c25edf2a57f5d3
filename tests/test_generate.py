"""HLS generation: exact constants, reproducible bytes, checked options."""

from __future__ import annotations

import filecmp
from fractions import Fraction

import pytest

from fpga_mpq import api
from fpga_mpq.errors import BadInput
from fpga_mpq.hls.generate import HlsConfig, exact_decimal


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
