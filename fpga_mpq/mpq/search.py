"""The one entry point: run a method against a target, compare with the uniform front, write the reports."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fpga_mpq.data import Split
from fpga_mpq.errors import BadInput
from fpga_mpq.models.net import QuantNet
from fpga_mpq.models.spec import Spec, save_spec
from fpga_mpq.mpq import dqmq, ptq, sdq, uniform
from fpga_mpq.mpq.confidence import CONFIDENCE, interval
from fpga_mpq.mpq.cost import DEFAULT_PART, CostModel
from fpga_mpq.mpq.deployment import write_deployment
from fpga_mpq.mpq.front import IsoRatio, Point, iso_accuracy_cost_ratio, pareto, plot, uniform_beaten, write_csv
from fpga_mpq.mpq.problem import MethodResult, Problem, Target, calibrate, check_candidates, make_point, seed_all
from fpga_mpq.mpq.widths import apply_widths
from fpga_mpq.parallel import SERIAL_RUNNER, Runner
from fpga_mpq.train import TrainConfig, TrainResult, correct, quant_from_float, save_checkpoint, train_float

METHODS: dict[str, Callable[..., MethodResult]] = {
    "uniform": uniform.run,
    "ptq": ptq.run,
    "sdq": sdq.run,
    "dqmq": dqmq.run,
}


@dataclass
class SearchResult:
    """The chosen design (``None`` when infeasible: the caller exits 1), both fronts and the comparison."""

    method: str
    target: Target
    cost_metric: str
    float_val_correct: np.ndarray  # the float model's right / wrong answer per validation / test sample
    float_test_correct: np.ndarray
    chosen: Point | None
    model: QuantNet | None
    front: list[Point]
    uniform: list[Point]
    iso: IsoRatio | None
    reason: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    log: dict = field(default_factory=dict)
    deployment: dqmq.Deployment | None = None
    confidence: float = CONFIDENCE
    peers: list[Point] = field(default_factory=list)  # ptq: uniform post-training quantization

    @property
    def float_val(self) -> float:
        return float(self.float_val_correct.mean())

    @property
    def float_test(self) -> float:
        return float(self.float_test_correct.mean())

    @property
    def iso_accuracy_cost_ratio(self) -> float | None:
        return None if self.iso is None else self.iso.value

    @property
    def feasible(self) -> bool:
        return self.chosen is not None

    def ratios_vs_uniform(self) -> dict[str, float]:
        """The chosen design's cost over each uniform design's, keyed by its label (``"uniform 8"``)."""
        if self.chosen is None:
            return {}
        mine = self.chosen.costs[self.cost_metric]
        return {p.label: mine / p.costs[self.cost_metric] for p in self.uniform}

    def summary(self) -> dict:
        """What ``--json`` prints."""
        return (
            {
                "method": self.method,
                "target": self.target.to_dict(),
                "feasible": self.feasible,
                "infeasible_reason": self.reason or None,
                "cost_metric": self.cost_metric,
                "accuracy_float": {
                    "val": self.float_val,
                    "val_interval": interval(self.float_val_correct),
                    "test": self.float_test,
                    "test_interval": interval(self.float_test_correct),
                },
                "selection_rule": self._rule(),
                "chosen": None if self.chosen is None else self.chosen.to_dict() | {"spec": self.chosen.spec.to_dict()},
                "iso_accuracy_cost_ratio": self.iso_accuracy_cost_ratio,
                "iso_accuracy_against": None if self.iso is None else self.iso.against,
                "iso_accuracy_beyond_uniform": None if self.iso is None else self.iso.beyond_uniform,
                "iso_accuracy_rule": None if self.iso is None else self.iso.describe(),
                "cost_ratio_vs_uniform": self.ratios_vs_uniform(),
                "uniform_beaten": uniform_beaten(self.uniform, self.front, self.cost_metric),
                "uniform_front": [p.to_dict() for p in pareto(self.uniform, self.cost_metric)],
                "front": [p.to_dict() for p in pareto(self.front, self.cost_metric)],
                "evaluated": len(self.front),
                "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
                "log": self.log,
            }
            | self._levels()
            | self._peers()
            | ({"versus_static": self.log["versus_static"]} if "versus_static" in self.log else {})
        )

    def _peers(self) -> dict:
        """ptq against its fair peer, uniform post-training quantization: which of those designs the
        method's front beats (cheaper, at most half a point less accurate) and the chosen design's
        iso-accuracy ratio over them."""
        if not self.peers:
            return {}
        ptq_front = [p for p in self.front if p.method == "ptq"]  # not the fine-tuned choice
        peer = None if self.chosen is None else iso_accuracy_cost_ratio(self.chosen, self.peers, self.cost_metric)
        return {
            "peer_front": [p.to_dict() for p in pareto(self.peers, self.cost_metric)],
            "peer_beaten": uniform_beaten(self.peers, ptq_front, self.cost_metric),
            "peer_iso_accuracy_cost_ratio": None if peer is None else peer.value,
            "peer_iso_accuracy_rule": None if peer is None else peer.describe(),
        }

    def _rule(self) -> str:
        if self.target.budget is not None:
            return f"the most accurate design (validation) within {self.target.describe()}"
        return (
            f"the cheapest design whose validation accuracy drop from the float model is at most "
            f"{self.target.max_drop} points at {self.confidence:.0%} confidence (paired bootstrap upper bound)"
        )

    def _levels(self) -> dict:
        """dqmq: each quality level's design (its spec path is added by the writer) and the expected cost."""
        if self.chosen is None or not self.chosen.levels:
            return {}
        n = len(self.chosen.levels)
        levels = [
            {
                "level": k,
                "name": dqmq.level_name(k, n),
                "widths": p.widths(),
                "cost": p.costs[self.cost_metric],
                "costs": p.costs,
                "val_acc": p.val_acc,
                "val_acc_interval": p.val_interval(),
                "test_acc": p.test_acc,
                "test_acc_interval": p.test_interval(),
            }
            for k, p in enumerate(self.chosen.levels)
        ]
        return {
            "levels": levels,
            "expected_cost": self.chosen.costs[self.cost_metric],
            "expected_costs": self.chosen.costs,
            "quality_mix": [round(float(m), 6) for m in self.log.get("quality_mix", [])],
        } | (self.deployment.summary() if self.deployment else {})


def search(
    method: str,
    spec: Spec,
    split: Split,
    candidates: tuple[int, ...] | list[int],
    target: Target,
    part: str = DEFAULT_PART,
    seed: int = 0,
    train_cfg: TrainConfig | None = None,
    uniform_front: list[Point] | None = None,
    confidence: float = CONFIDENCE,
    runner: Runner = SERIAL_RUNNER,
    **method_options,
) -> SearchResult:
    """Train the float model, run ``method`` (``uniform``, ``ptq`` or ``sdq``) and the uniform QAT
    reference, and compare them at iso accuracy. ``uniform_front`` reuses the reference of an earlier
    uniform run with the same arguments instead of retraining it. ``confidence`` is the one-sided level
    at which a max-drop target must hold (:meth:`Problem.meets`). The method and each uniform width
    are independent tasks for ``runner`` (serial by default; the CLI's default is a local Ray).
    ``method_options`` go to the method (ptq: ``calib_samples``, ``use_labels``, ``finetune_epochs``;
    sdq: ``cfg=SdqConfig(...)``, ``calib_samples``)."""
    if method not in METHODS:
        raise BadInput(f"--method {method!r}: one of {', '.join(METHODS)}")
    if not (isinstance(confidence, float) and 0.5 <= confidence < 1.0):
        raise BadInput(f"--confidence {confidence!r}: a one-sided level from 0.5 (the point estimate) to below 1")
    ladders = check_candidates(candidates)
    if method == "dqmq":
        dqmq.check_data(split)
    cost = CostModel(part)
    if target.budget is not None:
        cost.check_metric(target.metric)
    cost.check_part()
    cfg = TrainConfig(seed=seed) if train_cfg is None else train_cfg
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    seed_all(cfg.seed)
    fmodel = train_float(spec, split, cfg)
    float_val, float_test = correct(fmodel, split.x_val, split.y_val), correct(fmodel, split.x_test, split.y_test)
    problem = Problem(spec, split, ladders, cost, fmodel, cfg, float_val, float(float_test.mean()), confidence)
    seconds["float"] = time.perf_counter() - t

    seed_all(cfg.seed)
    result = _cheapest_over_budget(problem, target)
    reference = uniform_front or []
    statics: list[tuple[Point, QuantNet | None]] = [(p, None) for p in reference]  # dqmq's rivals
    if result is None:
        t = time.perf_counter()
        widths = [] if method != "uniform" and uniform_front is not None else list(ladders.bits)
        jobs = ([] if method == "uniform" else [method]) + widths
        names = [method if job == method else f"uniform {job}" for job in jobs]
        done = runner.map(_job, (problem, target, method_options), jobs, names, f"search {method}")
        seconds |= {name: s for name, (_, s) in zip(names, done, strict=True)}  # each task's own time
        ladder = [value for job, (value, _) in zip(jobs, done, strict=True) if job != method]
        result = uniform.choose(ladder, problem, target) if method == "uniform" else done[0][0]
        reference = [p for p, _ in ladder] or reference
        statics = ladder or statics
        seconds["parallel_wall" if method != "uniform" else "uniform"] = time.perf_counter() - t

    if method == "dqmq" and result.chosen is not None:
        result = dqmq.versus_static(problem, target, result, statics)
    metric = cost.headline
    ratio = None if result.chosen is None else iso_accuracy_cost_ratio(result.chosen, reference, metric)
    if method == "dqmq" and result.chosen is not None:
        result.log["quality_mix"] = dqmq.level_mix(split).tolist()
    return SearchResult(
        method=method,
        target=target,
        cost_metric=metric,
        float_val_correct=float_val,
        float_test_correct=float_test,
        chosen=result.chosen,
        model=result.model,
        front=result.front,
        uniform=reference,
        iso=ratio,
        reason=result.reason,
        seconds=seconds,
        log=result.log,
        deployment=result.deployment,
        confidence=confidence,
        peers=result.peers,
    )


def _job(shared: tuple[Problem, Target, dict], job: str | int) -> MethodResult | tuple[Point, QuantNet]:
    """One task of a search: the method (by name) or one uniform width (by bits), each seeded."""
    problem, target, options = shared
    if isinstance(job, int):
        return uniform.train_width(problem, job)
    seed_all(problem.train_cfg.seed)
    return METHODS[job](problem, target, **options)


def _cheapest_over_budget(problem: Problem, target: Target) -> MethodResult | None:
    """Fail fast when even every group at its lowest candidate (post-training, float weights) is over budget."""
    if target.budget is None:
        return None
    p = problem
    spec = apply_widths(p.spec, p.ladders.cheapest(p.spec))
    model = calibrate(quant_from_float(p.fmodel, spec, p.split.input_shape, p.train_cfg.seed), p.split.x_train[:256])
    point = make_point(p, "cheapest", "all lowest candidates", model)
    if point.costs[target.metric] <= target.budget:
        return None
    reason = (
        f"no configuration meets {target.describe()}: the cheapest (all lowest candidates) costs "
        f"{point.costs[target.metric]:g} {target.metric} at {100 * point.val_acc:.2f}% validation accuracy "
        "(float weights, no retraining)"
    )
    return MethodResult(None, None, [point], reason=reason)


def write_outputs(
    result: SearchResult, out: Path, input_shape: tuple[int, ...], data: str | None = None
) -> dict[str, str]:
    """spec.yaml and model.pt of the chosen design (when feasible), pareto.csv and pareto.png of both
    fronts; for dqmq a spec and checkpoint per level and for the estimator, and deployment.yaml,
    which names ``data`` (the data set the levels were measured on) so ``flow`` can verify each level."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    points = (result.front if result.method == "uniform" else result.front + result.uniform) + result.peers
    rows = [q for p in points for q in (p.levels or (p,))]  # dqmq: a row per level's configuration
    paths = {"pareto_csv": out / "pareto.csv", "pareto_png": out / "pareto.png"}
    write_csv(rows, paths["pareto_csv"], result.cost_metric)
    plot(points, paths["pareto_png"], result.cost_metric, result.chosen)
    if result.deployment is not None:
        return {k: str(v) for k, v in paths.items()} | write_deployment(result, out, input_shape, data)
    if result.chosen is not None:
        paths["spec"] = out / "spec.yaml"
        paths["checkpoint"] = out / "model.pt"
        save_spec(result.chosen.spec, paths["spec"])
        trained = TrainResult(result.model, result.float_test, result.chosen.test_acc)
        save_checkpoint(trained, input_shape, paths["checkpoint"])
    return {k: str(v) for k, v in paths.items()}
