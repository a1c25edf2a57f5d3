"""Mixed-precision search: costs, fronts, and each method on a tiny budget (few epochs, three candidates)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from fpga_mpq.data import load_split
from fpga_mpq.errors import BadInput
from fpga_mpq.export import check_qonnx_equals_brevitas, export_qonnx_file
from fpga_mpq.models.net import QuantNet
from fpga_mpq.models.spec import DEFAULT_SPEC, spec_from_dict
from fpga_mpq.mpq.confidence import drop_bound, interval
from fpga_mpq.mpq.cost import CostModel, effective_bits, layer_quants
from fpga_mpq.mpq.front import Point, iso_accuracy_cost_ratio, pareto, plot, uniform_beaten, write_csv
from fpga_mpq.mpq.problem import Problem, Target, calibrate, check_candidates, parse_budget
from fpga_mpq.mpq.ptq import correct_biases
from fpga_mpq.mpq.sdq import SdqConfig, StochasticNet
from fpga_mpq.mpq.search import search, write_outputs
from fpga_mpq.mpq.widths import Widths, apply_widths, widths_of
from fpga_mpq.train import TrainConfig, load_checkpoint, quant_from_float, train_float

FAST = TrainConfig(epochs=2, float_epochs=5)
CANDIDATES = (2, 4, 8)
BUDGET = Target(metric="bops", budget=70_000)  # widest 217,088 BOPs, cheapest (all at 2 bits) 13,568
METHOD_OPTIONS = {"uniform": {}, "ptq": {"calib_samples": 128}, "sdq": {"cfg": SdqConfig(search_epochs=2)}}


@pytest.fixture(scope="module")
def split():
    return load_split()


def _mlp(weights: tuple[int, ...], inputs: tuple[int, ...]) -> Widths:
    """DEFAULT_SPEC's widths: each layer's weights, then each layer's input (the network input first)."""
    return Widths(widths_of(DEFAULT_SPEC).groups, (*weights, *inputs))


def test_effective_bits_strip_trailing_zeros_and_count_the_sign():
    w = np.array([0, 1, -1, 2, 3, 6, -8, 5, -7])
    assert effective_bits(w, signed=True).tolist() == [0, 2, 2, 2, 3, 3, 2, 4, 4]
    assert effective_bits(w, signed=False).tolist() == [0, 1, 1, 1, 2, 2, 1, 3, 3]


def test_measured_costs_match_the_formulas():
    torch.manual_seed(0)
    model = QuantNet(DEFAULT_SPEC, 64).eval()
    costs = CostModel().measure(model)
    assert costs["bops"] == 64 * 32 * 6 * 8 + 32 * 32 * 4 * 6 + 32 * 10 * 3 * 4
    by_hand = 0
    for lq in layer_quants(model):
        assert lq.weights.shape[1] in (32, 10) and lq.w_type.signed
        for w in lq.weights.ravel():
            if w:
                odd = abs(int(w)) >> ((abs(int(w)) & -abs(int(w))).bit_length() - 1)
                by_hand += (odd.bit_length() + 1) * lq.in_type.width
    assert costs["exact_bits"] == by_hand


def test_an_unknown_budget_metric_is_bad_input():
    with pytest.raises(BadInput, match="not a cost metric"):
        CostModel().check_metric("watts")


def _point(method: str, cost: float, acc: float) -> Point:
    return Point(method, f"{method} {cost}", DEFAULT_SPEC, {"bops": cost, "exact_bits": cost / 2}, acc, acc)


def test_front_and_iso_accuracy_ratio(tmp_path):
    uni = [_point("uniform", c, a) for c, a in [(100, 0.80), (200, 0.90), (400, 0.95), (800, 0.94)]]
    assert [p.costs["bops"] for p in pareto(uni, "bops")] == [100, 200, 400]
    matched = iso_accuracy_cost_ratio(_point("ptq", 150, 0.945), uni, "bops")
    assert (matched.value, matched.against, matched.beyond_uniform) == (pytest.approx(150 / 400), "uniform 400", False)
    # beyond the uniform front: against the cheapest within half a point of the best uniform (0.95, 0.94)
    beyond = iso_accuracy_cost_ratio(_point("ptq", 150, 0.99), uni, "bops")
    assert (beyond.value, beyond.against, beyond.beyond_uniform) == (pytest.approx(150 / 400), "uniform 400", True)
    assert "at most" in beyond.describe()
    assert iso_accuracy_cost_ratio(_point("ptq", 150, 0.99), [], "bops") is None
    assert uniform_beaten(uni, [_point("ptq", 150, 0.945)], "bops") == ["uniform 200", "uniform 400", "uniform 800"]
    points = uni + [_point("ptq", 150, 0.945)]
    write_csv(points, tmp_path / "p.csv", "bops")
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert len(rows) == 1 + len(points) and rows[0].startswith("method,label,layers[0].weight")
    plot(points, tmp_path / "p.png", "bops", points[-1])
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("bad", [[], [0], [17], [1], [2, 2.5], [True]])
def test_bad_candidates_are_rejected(bad):
    with pytest.raises(BadInput, match="candidates"):
        check_candidates(bad)


def test_a_one_bit_candidate_is_refused_because_brevitas_exports_it_bipolar():
    with pytest.raises(BadInput, match="bipolar"):
        check_candidates([1, 2, 4])
    assert check_candidates([4, 2, 4]).bits == (2, 4)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Target(),
        lambda: Target(max_drop=1.0, metric="bops", budget=10),
        lambda: Target(max_drop=-1.0),
        lambda: parse_budget("luts=-5"),
        lambda: parse_budget("watts=5"),
        lambda: parse_budget("luts"),
    ],
)
def test_bad_targets_are_rejected(make):
    with pytest.raises(BadInput):
        make()


def test_budget_names_map_to_metrics():
    assert parse_budget("luts=5000") == Target(metric="lut", budget=5000.0)
    assert parse_budget("bops=1e6").metric == "bops"


def test_empty_calibration_set_is_bad_input(split):
    with pytest.raises(BadInput, match="calibration set is empty"):
        search("ptq", DEFAULT_SPEC, split, CANDIDATES, BUDGET, train_cfg=FAST, calib_samples=0)


def test_unknown_part_is_bad_input_before_training(split):
    with pytest.raises(BadInput, match="part"):
        search("ptq", DEFAULT_SPEC, split, CANDIDATES, BUDGET, part="xc9nope", train_cfg=FAST)


def test_unknown_method_is_bad_input(split):
    with pytest.raises(BadInput, match="method"):
        search("hawq", DEFAULT_SPEC, split, CANDIDATES, BUDGET, train_cfg=FAST)


@pytest.mark.parametrize("method", ["uniform", "ptq", "sdq"])
def test_a_budget_nobody_meets_is_infeasible_and_names_the_cheapest_cost(split, method):
    r = search(method, DEFAULT_SPEC, split, CANDIDATES, Target(metric="bops", budget=1000), train_cfg=FAST)
    assert not r.feasible and r.chosen is None
    assert "13568 bops" in r.reason and "accuracy" in r.reason
    assert r.summary()["feasible"] is False


def test_a_max_drop_even_the_widest_misses_is_infeasible(split):
    r = search("ptq", DEFAULT_SPEC, split, (2,), Target(max_drop=0.0), train_cfg=FAST, calib_samples=128)
    assert not r.feasible and "even the widest" in r.reason


@pytest.mark.parametrize("method", ["uniform", "ptq", "sdq"])
def test_each_method_respects_a_tiny_budget_and_is_reproducible(split, method):
    runs = [
        search(method, DEFAULT_SPEC, split, CANDIDATES, BUDGET, train_cfg=FAST, seed=0, **METHOD_OPTIONS[method])
        for _ in range(2)
    ]
    a, b = runs
    assert a.feasible, a.reason
    assert a.chosen.costs["bops"] <= BUDGET.budget
    assert a.chosen.costs == CostModel().measure(a.model)  # the returned model is the chosen design
    assert a.chosen.spec == b.chosen.spec and a.chosen.test_acc == b.chosen.test_acc
    assert [p.costs for p in a.front] == [p.costs for p in b.front]
    widths = {x for la in a.chosen.spec.layers[:-1] for x in (la.weight_bits, la.act_bits)}
    assert widths <= set(CANDIDATES)
    assert len(a.uniform) == len(CANDIDATES)


def test_ptq_design_is_saved_and_exported_without_retraining(split, tmp_path):
    r = search("ptq", DEFAULT_SPEC, split, CANDIDATES, BUDGET, train_cfg=FAST, calib_samples=128)
    paths = write_outputs(r, tmp_path, split.input_shape)
    assert {"spec", "checkpoint", "pareto_csv", "pareto_png"} <= set(paths)
    model, ck = load_checkpoint(tmp_path / "model.pt")
    assert spec_from_dict(ck["spec"]) == r.chosen.spec
    export_qonnx_file(model, split.n_features, tmp_path / "m.onnx")
    out = check_qonnx_equals_brevitas(model, tmp_path / "m.onnx", split.x_test[:64])
    assert out.shape == (64, 10)
    summary = r.summary()
    assert summary["cost_metric"] == CostModel().headline and summary["chosen"]["spec"] == r.chosen.spec.to_dict()
    assert summary["uniform_front"] and "iso_accuracy_cost_ratio" in summary


def test_bias_correction_removes_the_mean_output_error_of_weight_rounding(split):
    torch.manual_seed(0)
    fmodel = train_float(DEFAULT_SPEC, split, FAST)
    spec = apply_widths(DEFAULT_SPEC, _mlp((3, 3, 3), (8, 3, 3)))
    x = split.x_train[:256]
    with torch.no_grad():
        ref = fmodel(torch.from_numpy(x))

    def mean_error(model) -> float:
        with torch.no_grad():
            return float((model(torch.from_numpy(x)) - ref).mean(dim=0).abs().mean())

    model = calibrate(quant_from_float(fmodel, spec, split.n_features, 0), x)
    before = mean_error(model)
    assert mean_error(correct_biases(model, x)) < 0.5 * before


def test_uniform_puts_every_group_at_one_width_and_the_input_is_searched():
    ladders = check_candidates([2, 4])
    assert ladders.uniform(DEFAULT_SPEC, 1) == _mlp((2, 2, 2), (2, 2, 2))
    spec = apply_widths(DEFAULT_SPEC, ladders.uniform(DEFAULT_SPEC, 4))
    assert spec.input_bits == 4 and [la.act_bits for la in spec.layers] == [4, 4, DEFAULT_SPEC.layers[-1].act_bits]
    assert widths_of(spec) == _mlp((4, 4, 4), (4, 4, 4))
    assert ladders.cheapest(replace(DEFAULT_SPEC, input_signed=True)).bits == (2,) * 6


def test_sdq_cost_table_equals_the_cost_model_on_the_brevitas_model(split):
    """The differentiable expected cost is only as good as its table: each entry must be what the
    estimator says about the Brevitas model holding the same weights at those widths."""
    fmodel = train_float(DEFAULT_SPEC, split, FAST)
    ladders = check_candidates(CANDIDATES)
    problem = Problem(DEFAULT_SPEC, split, ladders, CostModel(), fmodel, FAST, np.zeros(len(split.y_val), bool), 0.0)
    x = split.x_train[:256]
    net = StochasticNet(problem, x, "lut")
    for widths in (_mlp((2, 4, 8), (2, 4, 8)), _mlp((4, 2, 2), (8, 2, 4))):
        model = calibrate(quant_from_float(fmodel, apply_widths(DEFAULT_SPEC, widths), split.n_features, 0), x)
        assert net.proxy(widths) == CostModel().measure(model)["lut"]


def _answers(n: int, only_ref: int, only_cand: int, both: int) -> tuple[np.ndarray, np.ndarray]:
    """Paired right / wrong answers of a reference and a candidate on n samples."""
    ref, cand = np.zeros(n, bool), np.zeros(n, bool)
    ref[:only_ref] = True
    cand[only_ref : only_ref + only_cand] = True
    shared = slice(only_ref + only_cand, only_ref + only_cand + both)
    ref[shared] = cand[shared] = True
    return ref, cand


def test_max_drop_accepts_a_design_only_when_the_drops_upper_confidence_bound_is_within(split):
    target = Target(max_drop=1.0)
    # 0.5 points lost on 1000 samples with no other disagreement: sure enough
    ref, close = _answers(1000, 5, 0, 955)
    problem = Problem(DEFAULT_SPEC, split, check_candidates(CANDIDATES), CostModel(), None, FAST, ref, 0.96)
    assert problem.meets(replace(_point("sdq", 1, 0.955), val_correct=close), target)
    # 0.9 points lost, but the two disagree on 71 samples: the bound is near 2 points
    ref, noisy = _answers(1000, 40, 31, 920)
    problem = replace(problem, float_val_correct=ref)
    assert drop_bound(ref, noisy) == pytest.approx(0.009 + 1.28 * np.sqrt(71) / 1000, abs=0.002)
    assert not problem.meets(replace(_point("sdq", 1, 0.951), val_correct=noisy), target)
    assert replace(problem, confidence=0.5).meets(replace(_point("sdq", 1, 0.951), val_correct=noisy), target)


def test_accuracy_interval_is_the_binomial_bootstrap_and_holds_the_estimate():
    correct = np.arange(1000) % 10 != 0  # 90%
    lo, hi = interval(correct)
    assert lo < 0.9 < hi
    assert hi - lo == pytest.approx(2 * 1.96 * np.sqrt(0.9 * 0.1 / 1000), rel=0.1)


def test_ptq_is_compared_with_uniform_post_training_and_its_fine_tune_replaces_the_choice(split):
    r = search("ptq", DEFAULT_SPEC, split, (2, 4, 8), Target(max_drop=5.0), train_cfg=FAST, finetune_epochs=1)
    assert [p.label for p in r.peers] == ["uniform ptq 2", "uniform ptq 4", "uniform ptq 8"]
    assert all(p.method == "uniform ptq" and p.sqnr is not None for p in r.peers)
    tune = r.log["finetune"]
    assert tune["epochs"] == 1 and tune["val_acc_before"] != tune["val_acc_after"]
    assert tune["kept"] and r.chosen.method == "ptq fine-tuned" and r.chosen in r.front
    assert r.chosen.val_acc == tune["val_acc_after"]
    summary = r.summary()
    assert [p["label"] for p in summary["peer_front"]] == [p.label for p in pareto(r.peers, "lut")]
    assert set(summary["peer_beaten"]) <= {p.label for p in r.peers}
    with pytest.raises(BadInput, match="--finetune-epochs -1"):
        search("ptq", DEFAULT_SPEC, split, (2, 4, 8), Target(max_drop=5.0), train_cfg=FAST, finetune_epochs=-1)


def test_a_missed_max_drop_names_the_measured_drop_and_its_bound(split):
    ref, cand = _answers(360, 4, 2, 340)  # float 95.56%, the design 0.56 points lower
    problem = Problem(DEFAULT_SPEC, split, check_candidates(CANDIDATES), CostModel(), None, FAST, ref, 0.96)
    text = problem.drop_text(replace(_point("ptq", 1, 0.95), val_correct=cand))
    assert "validation drop 0.56 points from the float model's 95.56%" in text
    assert "at 90% confidence on 360 samples" in text and "--confidence 0.5" in text
