"""Convolutional networks through HLS C simulation (io_parallel) and RTL simulation, bit for bit
against the golden model: every network of ``CNN_ZOO`` (padding, stride, depthwise groups, max /
average / global pools, residual blocks with a strided shortcut, bipolar FINN CNV-style layers,
Brevitas float defaults with BatchNorm)."""

from __future__ import annotations

import pytest

from fpga_mpq import api
from fpga_mpq.errors import BadInput
from fpga_mpq.export import export_qonnx_file
from fpga_mpq.hls.generate import HlsConfig
from fpga_mpq.testing import CNN_ZOO, brevitas_cnn

RTL_CASES = ("small CNN, power-of-two scales, max pool", "FINN CNV-style 1-bit/2-bit")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    paths = {}

    def export(name: str):
        if name not in paths:
            model, shape = brevitas_cnn(name)
            paths[name] = tmp_path_factory.mktemp("cnn") / "m.onnx"
            export_qonnx_file(model, shape, paths[name])
        return paths[name]

    return export


@pytest.mark.parametrize("name", list(CNN_ZOO))
def test_cnn_is_exact_in_c_simulation(exported, tmp_path, name):
    api.generate(exported(name), tmp_path / "prj", HlsConfig(io="parallel"))
    result = api.csim(tmp_path / "prj", random=1000, seed=1)
    assert result["samples"] == 1000 and result["mismatches"] == 0


def test_cnn_trace_compares_every_tensor_by_name(exported, tmp_path):
    api.generate(exported("residual network, strided 1x1 shortcut"), tmp_path / "prj", HlsConfig(io="parallel"))
    summary = api.csim(tmp_path / "prj", random=20, seed=2, trace=True)
    assert len(summary["layers"]) > 15 and summary["first_differing_tensor"] is None


def test_cnn_in_io_stream_is_refused_naming_the_layer(exported, tmp_path):
    with pytest.raises(BadInput, match="layer Conv_0: .*io_stream takes dense networks only"):
        api.generate(exported("small CNN, power-of-two scales, max pool"), tmp_path / "prj", HlsConfig(io="stream"))
    assert not (tmp_path / "prj").exists()


@pytest.mark.rtl
@pytest.mark.parametrize("name", RTL_CASES)
def test_small_cnn_is_exact_in_rtl_simulation(exported, tmp_path, name):
    assert api.rtlsim(exported(name), tmp_path / "rtl", random=300, seed=3)["mismatches"] == 0
