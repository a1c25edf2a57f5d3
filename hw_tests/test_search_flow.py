"""A searched bit-width spec goes through flow unchanged and is bit-exact in C simulation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fpga_mpq import api
from fpga_mpq.cli import main
from fpga_mpq.models.spec import load_spec


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
