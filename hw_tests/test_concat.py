"""A Concat of two dense branches in C simulation, io_parallel and io_stream (hls4ml's concatenate1d);
the image case is in the CNN zoo (hw_tests/test_cnn_hardware.py)."""

from __future__ import annotations

import pytest
import torch

from fpga_mpq import api
from fpga_mpq.export import export_qonnx_file
from fpga_mpq.hls.config import HlsConfig
from tests.test_user_layers import Branches


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_a_concat_of_dense_branches_is_exact_in_c_simulation(tmp_path, io):
    torch.manual_seed(0)
    model = Branches().train()
    with torch.no_grad():
        for _ in range(20):
            model(torch.randn(4, 8))
    export_qonnx_file(model.eval(), 8, tmp_path / "m.onnx")
    api.generate(tmp_path / "m.onnx", tmp_path / "prj", HlsConfig(io=io))
    result = api.csim(tmp_path / "prj", random=1000, seed=1)
    assert result["samples"] == 1000 and result["mismatches"] == 0
