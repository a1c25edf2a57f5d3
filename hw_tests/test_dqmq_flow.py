"""A dqmq search on digits-quality: a spec per quality level, and every level exact in C simulation."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from fpga_mpq.cli import main
from fpga_mpq.models.spec import load_spec

# Uniform 4-bit's BOPs on the default MLP (3,392 MACs x 4 x 4 bits) is 54,272: a budget between the
# cheapest (2-bit, 13,568) and the widest design. BOPs depend on the widths alone, not on trained
# weights, so the budget is met whatever the CPU's float sums made of the training (a LUT budget
# was met on one CPU and missed on another).
BUDGET_BOPS = 50_000


def test_each_quality_levels_design_flows_through_csim_exactly(tmp_path, capsys):
    args = ["search", "--method", "dqmq", "--data", "digits-quality", "--budget", f"bops={BUDGET_BOPS}"]
    assert main([*args, "--epochs", "2", "--candidates", "2,4,8", "-o", str(tmp_path / "s"), "--json"]) == 0
    search = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((tmp_path / "s" / "search.json").read_text())
    assert saved["chosen"]["costs"]["bops"] <= BUDGET_BOPS  # expected over the quality mix
    assert search["cost_metric"] == "lut"  # the headline every search reports, whatever it was budgeted in
    assert [lv["level"] for lv in search["levels"]] == [0, 1, 2, 3]
    for lv in search["levels"]:
        assert load_spec(Path(lv["spec"])) is not None and 0 < lv["test_acc"] <= 1
        assert set(lv["widths"]) >= {"input", "layers[0].weight"}
    assert json.loads((tmp_path / "s" / "search.json").read_text())["levels"] == search["levels"]
    deployment = yaml.safe_load((tmp_path / "s" / "deployment.yaml").read_text())
    assert deployment["data"] == "digits-quality" and len(deployment["levels"]) == 4

    assert main(["flow", "--deployment", str(tmp_path / "s"), "-o", str(tmp_path / "f"), "--json"]) == 0
    flow = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for lv, searched in zip(flow["levels"], search["levels"], strict=True):
        assert lv["mismatches"] == 0 and lv["outputs"] == 360 * 10  # the level's 360 test images
        assert lv["accuracy"] == searched["test_acc"]  # the hardware computes what the search measured
    assert flow["estimator"]["mismatches"] == 0
    assert flow["accuracy_hardware_level_declared"] == search["test_acc_level_declared"]
    assert flow["accuracy_hardware_level_estimated"] == search["test_acc_level_estimated"]
    readme = (tmp_path / "f" / "README.md").read_text()
    assert "Co-resident accelerators" in readme and "Reconfiguration per level" in readme
    assert all((tmp_path / "f" / f"level{k}" / "hls" / "firmware").is_dir() for k in range(4))
