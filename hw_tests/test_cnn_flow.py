"""CNN specs through the whole flow: Brevitas QAT → QONNX → golden model → HLS (io_stream by
default for CNNs) → C simulation bit for bit on the test set and on random inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fpga_mpq import api
from fpga_mpq.cli import main
from fpga_mpq.data import FASHION_DIR
from fpga_mpq.hls.config import HlsConfig

SPECS = Path(__file__).parent.parent / "specs"


@pytest.mark.parametrize("name", ["digits_cnn.yaml", pytest.param("digits_resnet.yaml", marks=pytest.mark.slow)])
def test_cnn_spec_flows_to_an_exact_stream_project(tmp_path, capsys, name):
    out = tmp_path / "flow"
    assert main(["flow", "--spec", str(SPECS / name), "-o", str(out), "--epochs", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["csim"]["samples"] == 360 and summary["csim"]["mismatches"] == 0
    assert json.loads((out / "hls" / "fpga_mpq.json").read_text())["config"]["io"] == "stream"
    assert summary["accuracy_hardware"] > 0.5  # two epochs: far from chance (0.1) already
    random = api.csim(out / "hls", random=1000, seed=4)
    assert random["samples"] == 1000 and random["mismatches"] == 0


def test_cnn_spec_flows_in_io_parallel_too(tmp_path):
    flow = api.flow(tmp_path / "flow", spec=SPECS / "digits_cnn.yaml", epochs=1, cfg=HlsConfig(io="parallel"))
    assert flow["csim"]["mismatches"] == 0


def test_a_cnn_spec_on_vector_data_is_refused_before_any_work(tmp_path, capsys):
    import numpy as np

    np.savez(tmp_path / "d.npz", X=np.zeros((40, 64), np.float32), y=np.arange(40) % 10)
    args = [
        "flow",
        "--spec",
        str(SPECS / "digits_cnn.yaml"),
        "--data",
        str(tmp_path / "d.npz"),
        "-o",
        str(tmp_path / "o"),
    ]
    assert main(args) == 2
    assert "the spec is a CNN but the data holds vectors of 64 features" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_cnn_is_accurate_and_exact_on_the_whole_test_set(tmp_path):
    """The issue's must-show: specs/fashion_cnn.yaml with its own training defaults (about 30 minutes)."""
    flow = api.flow(tmp_path / "flow", spec=SPECS / "fashion_cnn.yaml")
    assert flow["csim"]["samples"] == 10_000 and flow["csim"]["mismatches"] == 0
    assert flow["accuracy_quant"] >= 0.88 and flow["accuracy_hardware"] >= 0.88
