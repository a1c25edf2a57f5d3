"""DQMQ: the quality-conditioned policy, its exact expected cost, commitment, the shared-weight
fine-tune, reproducibility on an MLP and a CNN, and the deployment file."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fpga_mpq.data import Split, load_split
from fpga_mpq.errors import BadInput
from fpga_mpq.models.net import FloatNet
from fpga_mpq.models.spec import DEFAULT_SPEC, load_spec
from fpga_mpq.mpq.cost import CostModel
from fpga_mpq.mpq.deployment import load_deployment
from fpga_mpq.mpq.dqmq import DqmqConfig, PolicyNet, _commit, _finetune, level_mix, versus_static
from fpga_mpq.mpq.front import Point
from fpga_mpq.mpq.problem import MethodResult, Problem, Target, check_candidates
from fpga_mpq.mpq.search import search, write_outputs
from fpga_mpq.mpq.widths import Widths
from fpga_mpq.train import TrainConfig

SPECS = Path(__file__).resolve().parents[1] / "specs"
FAST = TrainConfig(epochs=1, float_epochs=2)
CFG = DqmqConfig(search_epochs=2)


def _small(s: Split, n: int) -> Split:
    """The first n images of each split at every level (the sets hold each image once per level)."""

    def pick(q: np.ndarray) -> np.ndarray:
        return np.concatenate([np.flatnonzero(q == lv)[:n] for lv in range(s.levels)])

    tr, va, te = pick(s.q_train), pick(s.q_val), pick(s.q_test)
    return Split(
        s.x_train[tr],
        s.y_train[tr],
        s.x_val[va],
        s.y_val[va],
        s.x_test[te],
        s.y_test[te],
        s.q_train[tr],
        s.q_val[va],
        s.q_test[te],
    )


@pytest.fixture(scope="module")
def quality():
    return load_split("digits-quality", DEFAULT_SPEC)


@pytest.fixture(scope="module")
def problem(quality):
    torch.manual_seed(0)
    fmodel = FloatNet(DEFAULT_SPEC, quality.input_shape).eval()
    ladders = check_candidates((2, 4, 8))
    split = _small(quality, 60)
    return Problem(DEFAULT_SPEC, split, ladders, CostModel(), fmodel, FAST, np.zeros(len(split.y_val), bool), 0.0)


def test_expected_cost_is_the_exact_expectation_over_every_configuration(problem):
    net = PolicyNet(problem, problem.split.x_train[:64], "lut")
    with torch.no_grad():
        net.a.normal_(generator=torch.Generator().manual_seed(1))
        net.c.normal_(generator=torch.Generator().manual_seed(2))
    for level in (0, 3):
        p = net.probs(level)
        total = 0.0
        for rungs in itertools.product(*(range(len(ladder)) for ladder in net.ladders)):
            widths = Widths(net.groups, tuple(ladder[j] for ladder, j in zip(net.ladders, rungs, strict=True)))
            chance = np.prod([float(p[k, j].detach()) for k, j in enumerate(rungs)])
            total += chance * net.proxy(widths)
        assert float(net.expected_cost(level).detach()) == pytest.approx(total, rel=1e-5)


def test_the_policy_depends_on_quality_through_two_vectors_per_group(problem):
    net = PolicyNet(problem, problem.split.x_train[:64], "lut")
    assert net.parameter_count() == 2 * 3 * len(net.groups)  # a and c over three rungs per group
    with torch.no_grad():
        net.c.zero_()
        net.c[:, 0] = 10.0  # worse quality pushes every group to its lowest rung
    assert net.committed(0).bits == tuple(ladder[-1] for ladder in net.ladders)
    assert net.committed(3).bits == tuple(ladder[0] for ladder in net.ladders)
    assert torch.allclose(net.probs(2).sum(dim=1), torch.ones(len(net.groups)))


def test_a_draw_is_one_width_per_group_and_its_gradient_reaches_the_policy(problem):
    net = PolicyNet(problem, problem.split.x_train[:64], "lut")
    x = torch.from_numpy(problem.split.x_train[:16])
    out = net(x, 2, torch.rand(net.a.shape, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(net.draws.detach().sum(dim=1), torch.ones(len(net.groups)))
    assert set(net.draws.detach().unique().tolist()) <= {0.0, 1.0}
    out.sum().backward()
    assert net.a.grad.abs().sum() > 0 and net.c.grad.abs().sum() > 0


def test_commitment_lowers_the_least_sure_widths_until_the_expected_cost_fits(problem):
    net = PolicyNet(problem, problem.split.x_train[:64], "lut")
    mix = level_mix(problem.split)
    widest = net.proxy(problem.ladders.widest(problem.spec))
    widths = _commit(net, 0.5 * widest, mix)
    assert len(widths) == problem.split.levels
    assert sum(m * net.proxy(w) for m, w in zip(mix, widths, strict=True)) <= 0.5 * widest


def test_fine_tuned_levels_share_their_weights_and_keep_their_own_widths(problem):
    widths = [problem.ladders.uniform(problem.spec, b) for b in (8, 8, 4, 2)]
    models, _ = _finetune(problem, problem.fmodel, widths, CFG)
    for name, p in models[0].named_parameters():
        if name.endswith(".op.weight"):
            for m in models[1:]:
                assert torch.equal(dict(m.named_parameters())[name], p)
    assert models[0].spec.input_bits == 8 and models[3].spec.input_bits == 2


def test_dqmq_needs_data_with_quality_levels(problem):
    plain = Split(*problem.split.arrays())
    with pytest.raises(BadInput, match="quality level per sample"):
        search("dqmq", DEFAULT_SPEC, plain, (2, 4, 8), Target(metric="lut", budget=5000), train_cfg=FAST)


def _search_twice(spec, split, budget):
    target = Target(metric="bops", budget=budget)
    runs = [search("dqmq", spec, split, (2, 4, 8), target, train_cfg=FAST, uniform_front=[], cfg=CFG) for _ in range(2)]
    return [{k: v for k, v in r.summary().items() if k != "seconds"} for r in runs], runs[0]


def test_an_mlp_search_is_reproducible_and_meets_its_expected_budget(quality, tmp_path):
    (a, b), r = _search_twice(DEFAULT_SPEC, _small(quality, 150), 60_000)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["expected_cost"] <= 60_000 and len(a["levels"]) == 4
    assert a["expected_costs"]["bops"] == pytest.approx(np.mean([lv["costs"]["bops"] for lv in a["levels"]]))
    assert len(a["estimator"]["confusion"]) == 4
    paths = write_outputs(r, tmp_path, (64,), "digits-quality")
    dep = load_deployment(Path(paths["deployment"]))
    assert [lv.checkpoint.name for lv in dep.levels] == ["model.pt"] * 4 and dep.data == "digits-quality"


def test_a_cnn_search_is_reproducible(tmp_path):
    spec = load_spec(SPECS / "digits_cnn.yaml")
    (a, b), _ = _search_twice(spec, _small(load_split("digits-quality", spec), 40), 600_000)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["expected_cost"] <= 600_000
    assert {"layers[0].weight", "layers[0].act"} <= set(a["levels"][0]["widths"])


def test_a_broken_deployment_file_is_one_error_naming_what_is_wrong(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_deployment(tmp_path / "none.yaml")
    (tmp_path / "d.yaml").write_text("format: other\n")
    with pytest.raises(BadInput, match="not a fpga_mpq deployment"):
        load_deployment(tmp_path / "d.yaml")
    doc = {"format": "fpga_mpq.deployment/1", "levels": [{"level": 0, "checkpoint": "a.pt"}, {"level": 1}]}
    (tmp_path / "d.yaml").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match=r"levels\[0\].checkpoint = a.pt does not exist"):
        load_deployment(tmp_path / "d.yaml")
    (tmp_path / "d.yaml").write_text(": : [")
    with pytest.raises(BadInput, match="not readable YAML"):
        load_deployment(tmp_path / "d.yaml")


def test_quality_mix_is_the_test_sets_share_of_each_level(quality):
    assert level_mix(quality).tolist() == [0.25] * 4
    skewed = replace(quality, q_test=np.repeat([0, 1, 2, 3], [1, 1, 1, 5]))
    assert level_mix(skewed).tolist() == [0.125, 0.125, 0.125, 0.625]


def test_a_max_drop_target_bisects_the_expected_budget_and_keeps_the_cheapest_design_within_it(quality):
    cfg = DqmqConfig(search_epochs=1, probes=2)
    r = search("dqmq", DEFAULT_SPEC, _small(quality, 60), (2, 8), Target(max_drop=100.0), train_cfg=FAST,
               uniform_front=[], cfg=cfg)  # fmt: skip
    budgets = [p["budget"] for p in r.log["probes"]]
    assert len(budgets) == 2 and budgets[1] < budgets[0]  # every probe met the target: the next is cheaper
    assert r.chosen.costs["lut"] == min(p.costs["lut"] for p in r.front)


def _static(problem: Problem, label: str, lut: float, right_by_level: list[float]) -> Point:
    """A static design right on the first ``share`` of each level's validation samples."""
    s = problem.split
    val = np.zeros(len(s.y_val), dtype=bool)
    for lv, share in enumerate(right_by_level):
        idx = np.flatnonzero(s.q_val == lv)
        val[idx[: round(share * len(idx))]] = True
    return Point("uniform", label, problem.spec, {"lut": lut}, float(val.mean()), 0.0, val_correct=val)


def _dqmq_result(problem: Problem, lut: float, val_by_level: list[float]) -> MethodResult:
    levels = tuple(
        Point("dqmq", f"level {lv}", problem.spec, {"lut": lut}, acc, 0.0) for lv, acc in enumerate(val_by_level)
    )
    chosen = Point("dqmq", "dqmq", problem.spec, {"lut": lut}, float(np.mean(val_by_level)), 0.0, levels=levels)
    return MethodResult(chosen, None, [chosen])


def test_dqmq_gives_way_to_a_static_design_that_beats_it_on_a_level_at_equal_expected_cost(problem):
    target = Target(metric="lut", budget=10_000)
    statics = [
        (_static(problem, "uniform 2", 1_000, [0.5, 0.5, 0.5, 0.5]), "net 2"),
        (_static(problem, "uniform 4", 3_000, [0.9, 0.8, 0.7, 0.6]), "net 4"),
        (_static(problem, "uniform 8", 9_000, [1.0, 1.0, 1.0, 1.0]), "net 8"),  # above dqmq's expected cost
    ]
    worse_on_severe = versus_static(problem, target, _dqmq_result(problem, 3_000, [0.95, 0.9, 0.8, 0.5]), statics)
    assert (worse_on_severe.chosen.label, worse_on_severe.model) == ("uniform 4", "net 4")
    decision = worse_on_severe.log["versus_static"]
    assert decision["kept"] == "uniform 4" and "severe" in decision["reason"]
    better_everywhere = versus_static(problem, target, _dqmq_result(problem, 3_000, [0.9, 0.8, 0.75, 0.6]), statics)
    assert better_everywhere.chosen.label == "dqmq"
    assert better_everywhere.log["versus_static"]["candidate"] == "uniform 4"
    alone = versus_static(problem, target, _dqmq_result(problem, 500, [0.1] * 4), statics)
    assert alone.chosen.label == "dqmq" and "no static design" in alone.log["versus_static"]["reason"]
