"""The search problem every method shares: the data, the groups and their ladders, the target, the
float reference, and how a trained design becomes a measured :class:`~fpga_mpq.mpq.front.Point`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from brevitas.graph.calibrate import calibration_mode
from torch import nn

from fpga_mpq.data import Split
from fpga_mpq.errors import BadInput
from fpga_mpq.models.net import FloatNet, QuantNet
from fpga_mpq.models.spec import Spec
from fpga_mpq.mpq.confidence import CONFIDENCE, drop_bound
from fpga_mpq.mpq.cost import BUDGET_METRICS, CostModel
from fpga_mpq.mpq.front import Point
from fpga_mpq.mpq.widths import Widths, widths_of
from fpga_mpq.train import TrainConfig, correct

if TYPE_CHECKING:
    from fpga_mpq.mpq.dqmq import Deployment

# 1 bit is no candidate: Brevitas exports a 1-bit quantizer as a bipolar one (+-scale), not the 0 / scale
# (or the lone 0 of a narrow signed one) it trains with, so no 1-bit design is exact
MIN_CANDIDATE, MAX_CANDIDATE = 2, 16


@dataclass(frozen=True)
class Ladders:
    """The allowed widths of every group, ascending."""

    bits: tuple[int, ...]

    def uniform(self, spec: Spec, bits: int) -> Widths:
        """Every group at ``bits`` (or at its lowest rung when ``bits`` is below it)."""
        template = widths_of(spec)
        return replace(template, bits=(max(bits, self.bits[0]),) * len(template.groups))

    def widest(self, spec: Spec) -> Widths:
        return self._all(spec, -1)

    def cheapest(self, spec: Spec) -> Widths:
        return self._all(spec, 0)

    def _all(self, spec: Spec, rung: int) -> Widths:
        template = widths_of(spec)
        return replace(template, bits=(self.bits[rung],) * len(template.groups))


def check_candidates(candidates: tuple[int, ...] | list[int]) -> Ladders:
    """Validate the candidate list; bad widths are the user's error."""
    cands = tuple(candidates)
    if not cands:
        raise BadInput("--candidates: needs at least one bit-width")
    for c in cands:
        if isinstance(c, bool) or not isinstance(c, int) or not MIN_CANDIDATE <= c <= MAX_CANDIDATE:
            raise BadInput(
                f"--candidates: {c!r} is not a bit-width in {MIN_CANDIDATE}..{MAX_CANDIDATE}"
                + (" (Brevitas exports a 1-bit quantizer as a bipolar one: never exact)" if c == 1 else "")
            )
    return Ladders(tuple(sorted(set(cands))))


@dataclass(frozen=True)
class Target:
    """Either an allowed accuracy drop (points below the float model, validation set) or a cost budget."""

    max_drop: float | None = None
    metric: str | None = None
    budget: float | None = None

    def __post_init__(self) -> None:
        if (self.max_drop is None) == (self.budget is None):
            raise BadInput("give exactly one of --max-drop and --budget")
        if self.max_drop is not None and not (np.isfinite(self.max_drop) and self.max_drop >= 0):
            raise BadInput(f"--max-drop {self.max_drop}: must be a non-negative number of accuracy points")
        if self.budget is not None:
            if self.metric not in BUDGET_METRICS.values():
                raise BadInput(f"--budget: unknown metric {self.metric!r} (one of {', '.join(BUDGET_METRICS)})")
            if not (np.isfinite(self.budget) and self.budget > 0):
                raise BadInput(f"--budget {self.metric}={self.budget}: must be a positive number")

    def describe(self) -> str:
        if self.max_drop is not None:
            return f"max-drop {self.max_drop} points"
        return f"{self.metric} <= {self.budget:g}"

    def to_dict(self) -> dict:
        return {"max_drop": self.max_drop, "metric": self.metric, "budget": self.budget}


def parse_budget(text: str) -> Target:
    """``luts=5000`` / ``bops=1e6`` / ``dsp=0`` / ``exact_bits=...`` at the CLI edge."""
    m = re.fullmatch(r"\s*(\w+)\s*=\s*([0-9.eE+-]+)\s*", text)
    if not m:
        raise BadInput(f"--budget {text!r}: expected METRIC=N, e.g. luts=5000")
    name, value = m.group(1).lower(), m.group(2)
    if name not in BUDGET_METRICS:
        raise BadInput(f"--budget {text!r}: unknown metric {name!r} (one of {', '.join(BUDGET_METRICS)})")
    try:
        number = float(value)
    except ValueError:
        raise BadInput(f"--budget {text!r}: {value!r} is not a number") from None
    return Target(metric=BUDGET_METRICS[name], budget=number)


@dataclass
class Problem:
    """What every method gets: the base spec, the data, the trained float model and the cost model.
    ``float_val_correct`` is the float model's right / wrong answer per validation sample, which the
    max-drop rule pairs with each candidate's."""

    spec: Spec
    split: Split
    ladders: Ladders
    cost: CostModel
    fmodel: FloatNet
    train_cfg: TrainConfig
    float_val_correct: np.ndarray
    float_test: float
    confidence: float = CONFIDENCE

    @property
    def float_val(self) -> float:
        return float(self.float_val_correct.mean())

    def meets(self, point: Point, target: Target) -> bool:
        """Budget: the measured cost is within it. Max-drop: the accuracy drop from the float model on
        the validation set is within it at ``confidence`` (an upper bound from a paired bootstrap), so
        a design that only looks good by the luck of a small validation set is not accepted."""
        if target.budget is not None:
            return point.costs[target.metric] <= target.budget
        return drop_bound(self.float_val_correct, point.val_correct, self.confidence) <= target.max_drop / 100.0

    def drop_text(self, point: Point) -> str:
        """A design's measured drop and its bound, for the reason a max-drop target was missed."""
        drop = 100 * (self.float_val - point.val_acc)
        bound = 100 * drop_bound(self.float_val_correct, point.val_correct, self.confidence)
        return (
            f"{point.label}: validation drop {drop:.2f} points from the float model's {100 * self.float_val:.2f}%, "
            f"at most {bound:.2f} at {self.confidence:.0%} confidence on {len(self.float_val_correct)} samples "
            "(--confidence 0.5 judges the measured drop alone)"
        )


@dataclass
class MethodResult:
    """A method's answer: the chosen point (``None`` when infeasible, with the reason) and all it evaluated."""

    chosen: Point | None
    model: QuantNet | None
    front: list[Point]
    reason: str = ""
    log: dict = field(default_factory=dict)
    deployment: Deployment | None = None  # dqmq: a network per quality level and the quality estimator
    peers: list[Point] = field(default_factory=list)  # ptq: uniform post-training quantization, its fair peer


def select(points: list[Point], problem: Problem, target: Target) -> Point | None:
    """Budget: the most accurate point within it. Max-drop: the cheapest point whose drop is within
    the target at the problem's confidence (:meth:`Problem.meets`)."""
    ok = [p for p in points if problem.meets(p, target)]
    if not ok:
        return None
    if target.budget is not None:
        return max(ok, key=lambda p: (p.val_acc, -p.costs[target.metric]))
    metric = problem.cost.headline
    return min(ok, key=lambda p: (p.costs[metric], -p.val_acc))


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def weighted_ops(model: nn.Module) -> list[nn.Linear | nn.Conv2d]:
    """Every conv and dense op (Brevitas' subclass them), in the order of ``Spec.weighted()``."""
    return [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]


def calibrate(qmodel: QuantNet, x: np.ndarray) -> QuantNet:
    """Set every activation quantizer's range from float statistics on ``x`` (Brevitas calibration mode)."""
    if len(x) == 0:
        raise BadInput("the calibration set is empty")
    qmodel.eval()
    with torch.no_grad(), calibration_mode(qmodel):
        qmodel(torch.from_numpy(x))
    return qmodel.eval()


def make_point(problem: Problem, method: str, label: str, model: QuantNet, sqnr: float | None = None) -> Point:
    """Measure a configuration: its costs, and its validation and test accuracy (per quality level too,
    when the data has levels)."""
    split = problem.split
    val, test = correct(model, split.x_val, split.y_val), correct(model, split.x_test, split.y_test)
    by_level = None
    if split.has_quality:
        by_level = tuple(float(test[split.q_test == lv].mean()) for lv in range(split.levels))
    return Point(
        method=method,
        label=label,
        spec=model.spec,
        costs=problem.cost.measure(model),
        val_acc=float(val.mean()),
        test_acc=float(test.mean()),
        sqnr=sqnr,
        test_by_level=by_level,
        val_correct=val,
        test_correct=test,
    )
