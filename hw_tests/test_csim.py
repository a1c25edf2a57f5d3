"""Generate HLS projects, build them with g++ and compare every output bit for bit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fpga_mpq import api
from fpga_mpq.cli import main
from fpga_mpq.hls.config import HlsConfig
from fpga_mpq.hls.generate import SOFTMAX_TOLERANCE
from fpga_mpq.ir.types import parse_ap

SPECS = Path(__file__).resolve().parent.parent / "specs"
RANDOM = 2000


@pytest.fixture(scope="module")
def default_flow(tmp_path_factory):
    return api.flow(tmp_path_factory.mktemp("flow") / "out")


def test_default_flow_is_accurate_and_bit_exact_on_the_test_set(default_flow):
    assert default_flow["accuracy_quant"] >= 0.90
    assert default_flow["csim"]["samples"] == 360
    assert default_flow["csim"]["mismatches"] == 0


def test_default_project_is_bit_exact_on_random_saturating_inputs(default_flow):
    result = api.csim(Path(default_flow["project"]), random=RANDOM, seed=1)
    assert result["outputs"] == RANDOM * 10
    assert result["mismatches"] == 0


@pytest.mark.parametrize("spec", ["digits_2bit.yaml", "digits_8bit.yaml"])
def test_other_specs_are_bit_exact(spec, tmp_path):
    flow = api.flow(tmp_path / "out", spec=SPECS / spec, epochs=10)
    assert flow["csim"]["mismatches"] == 0
    result = api.csim(Path(flow["project"]), random=RANDOM, seed=2)
    assert result["samples"] == RANDOM and result["mismatches"] == 0


def test_jet_tagging_zoo_model_is_exact_up_to_softmax_and_softmax_within_tolerance(zoo, tmp_path):
    api.generate(zoo / "qkeras_jettagging.onnx", tmp_path / "prj", input_type=parse_ap("ap_fixed<16,6>"))
    result = api.csim(tmp_path / "prj", random=RANDOM, seed=3)
    assert result["outputs"] == RANDOM * 5
    assert result["mismatches"] == 0
    assert result["softmax_out_of_tolerance"] == 0
    assert result["softmax_max_abs_error"] <= SOFTMAX_TOLERANCE


def test_io_stream_projects_are_bit_exact(default_flow, zoo, tmp_path):
    cfg = HlsConfig(io="stream")
    api.generate(Path(default_flow["onnx"]), tmp_path / "digits", cfg)
    assert api.csim(tmp_path / "digits", random=RANDOM, seed=4)["mismatches"] == 0
    api.generate(zoo / "qkeras_jettagging.onnx", tmp_path / "jet", cfg, parse_ap("ap_fixed<16,6>"))
    jet = api.csim(tmp_path / "jet", random=RANDOM, seed=5)
    assert jet["mismatches"] == 0 and jet["softmax_out_of_tolerance"] == 0


def _negate_weights(prj: Path, name: str) -> None:
    """Corrupt one generated weight array: every value negated."""
    path = prj / "firmware" / "weights" / f"{name}.h"
    head, values, tail = re.split(rf"(?<={name.upper()}_VALUES \\\n)|(?=\n\n#ifdef)", path.read_text())
    path.write_text(head + re.sub(r"(-?[0-9.]+)", r"-(\1)", values) + tail)


def test_a_corrupted_weight_file_is_caught_with_exit_1(default_flow, tmp_path, capsys):
    """The comparison is not vacuous: negated weights in the last layer must show as mismatches."""
    api.generate(Path(default_flow["onnx"]), tmp_path / "prj")
    _negate_weights(tmp_path / "prj", "w6")  # the last Dense layer
    code = main(["csim", str(tmp_path / "prj"), "--random", "200", "--json"])
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert code == 1
    assert '"mismatches": 0' not in summary["error"]


def test_trace_names_the_first_differing_layer(default_onnx, tmp_path, capsys):
    api.generate(default_onnx, tmp_path / "prj")
    clean = api.csim(tmp_path / "prj", random=100, trace=True)
    assert len(clean["layers"]) == 6 and all(la["mismatches"] == 0 for la in clean["layers"])
    _negate_weights(tmp_path / "prj", "w4")  # the second Dense layer
    assert main(["csim", str(tmp_path / "prj"), "--random", "100", "--trace", "--json"]) == 1
    summary = json.loads(json.loads(capsys.readouterr().out.splitlines()[-1])["error"])
    assert summary["first_differing_layer"] == clean["layers"][2]["layer"]
    assert [la["mismatches"] == 0 for la in summary["layers"][:2]] == [True, True]


@pytest.mark.parametrize("name", ["TFC_2W2A.onnx", "TFC_1W1A.onnx"])
@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_finn_zoo_models_with_batchnorm_and_bipolar_quant_are_bit_exact(zoo, tmp_path, name, io):
    api.generate(zoo / name, tmp_path / "prj", HlsConfig(io=io))
    result = api.csim(tmp_path / "prj", random=RANDOM, seed=6)
    assert result["outputs"] == RANDOM * 10
    assert result["mismatches"] == 0
