"""A searched bit-width spec goes through flow unchanged and is bit-exact in C simulation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fpga_mpq import api
from fpga_mpq.cli import main
from fpga_mpq.data import Split, load_split
from fpga_mpq.models.spec import load_spec
from fpga_mpq.mpq.problem import Target
from fpga_mpq.mpq.search import search, write_outputs
from fpga_mpq.train import TrainConfig

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.mark.parametrize("method", ["uniform", "ptq", "sdq"])
def test_each_methods_spec_meets_its_budget_and_flows_through_csim_exactly(tmp_path, capsys, method):
    args = ["search", "--method", method, "-o", str(tmp_path / "s"), "--budget", "bops=60000", "--epochs", "4"]
    args += ["--candidates", "2,4,8"]
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["chosen"]["costs"]["bops"] <= 60000 and summary["cost_metric"] == "lut"
    spec_path = Path(summary["spec"])
    assert load_spec(spec_path).to_dict() == summary["chosen"]["spec"]
    assert (tmp_path / "s" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    flow = api.flow(tmp_path / "flow", spec=spec_path, epochs=4)
    assert flow["csim"]["mismatches"] == 0


def test_a_budget_below_the_cheapest_design_exits_1_naming_its_cost(tmp_path, capsys):
    args = ["search", "--method", "ptq", "-o", str(tmp_path / "s"), "--budget", "bops=1000", "--epochs", "2"]
    assert main(args) == 1
    assert "cheapest (all lowest candidates) costs 13568 bops" in capsys.readouterr().err


@pytest.mark.slow  # about 4 minutes; tests/test_mpq_cnn.py searches CNN specs in make test
def test_a_ptq_design_of_the_digits_cnn_flows_through_csim_exactly(tmp_path):
    """Mixed widths in a CNN (the input, each conv's weights and activation) reach the HLS design intact."""
    spec = load_spec(SPECS / "digits_cnn.yaml")
    full = load_split(None, spec)
    split = Split(full.x_train[:300], full.y_train[:300], full.x_val, full.y_val, full.x_test, full.y_test)
    target = Target(metric="bops", budget=400_000)  # all at 8 bits: 1,515,520 BOPs; all at 2: 94,720
    cfg = TrainConfig(epochs=1, float_epochs=2)
    r = search("ptq", spec, split, (2, 8), target, train_cfg=cfg, uniform_front=[], calib_samples=64)
    assert r.feasible, r.reason
    assert r.chosen.costs["bops"] <= 400_000 and len(set(r.chosen.widths().values())) > 1
    spec_path = Path(write_outputs(r, tmp_path / "s", split.input_shape)["spec"])
    flow = api.flow(tmp_path / "flow", spec=spec_path, epochs=1)
    assert flow["spec"] == r.chosen.spec.to_dict()
    assert flow["csim"]["mismatches"] == 0
