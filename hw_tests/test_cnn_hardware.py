"""Convolutional networks through HLS C simulation (io_parallel) and RTL simulation, bit for bit
against the golden model: every network of ``CNN_ZOO`` (padding, stride, depthwise groups, max /
average / global pools, residual blocks with a strided shortcut, bipolar FINN CNV-style layers,
Brevitas float defaults with BatchNorm)."""

from __future__ import annotations

import pytest

from fpga_mpq import api
from fpga_mpq.errors import BadInput
from fpga_mpq.hls.generate import HlsConfig
from fpga_mpq.testing import CNN_ZOO

RTL_CASES = ("small CNN, power-of-two scales, max pool", "FINN CNV-style 1-bit/2-bit")


@pytest.mark.parametrize("name", list(CNN_ZOO))
def test_cnn_is_exact_in_c_simulation(cnn_onnx, tmp_path, name):
    api.generate(cnn_onnx(name), tmp_path / "prj", HlsConfig(io="parallel"))
    result = api.csim(tmp_path / "prj", random=1000, seed=1)
    assert result["samples"] == 1000 and result["mismatches"] == 0


def test_cnn_trace_compares_every_tensor_by_name(cnn_onnx, tmp_path):
    api.generate(cnn_onnx("residual network, strided 1x1 shortcut"), tmp_path / "prj", HlsConfig(io="parallel"))
    summary = api.csim(tmp_path / "prj", random=20, seed=2, trace=True)
    assert len(summary["layers"]) > 15 and summary["first_differing_tensor"] is None


def test_cnn_in_io_stream_is_refused_naming_the_layer(cnn_onnx, tmp_path):
    with pytest.raises(BadInput, match="layer Conv_0: .*io_stream takes dense networks only"):
        api.generate(cnn_onnx("small CNN, power-of-two scales, max pool"), tmp_path / "prj", HlsConfig(io="stream"))
    assert not (tmp_path / "prj").exists()


@pytest.mark.rtl
@pytest.mark.parametrize("name", RTL_CASES)
def test_small_cnn_is_exact_in_rtl_simulation(cnn_onnx, tmp_path, name):
    assert api.rtlsim(cnn_onnx(name), tmp_path / "rtl", random=300, seed=3)["mismatches"] == 0
