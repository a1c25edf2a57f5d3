"""Post-training mixed precision (Pandey et al. 2023; AIMET Automatic Mixed Precision).

No retraining: each configuration is the float model's weights in a QuantNet of that spec, fitted
on a few hundred unlabeled training samples: activation ranges by Brevitas calibration mode, then
bias correction (each layer's bias absorbs the mean output shift its weight rounding causes,
(W − Q(W))·E[x] for a dense layer, per output channel the mean over the batch and the pixels of
conv(x, W − Q(W)) for a conv; first layer first, on calibrated and already-corrected inputs). On the digits MLP
bias correction lifts uniform 3-bit from 89% to 93% test accuracy. (Clipping the weights to the
power-of-two scale with the least weight error was tried and dropped: it lost accuracy at 2 and 4 bits.)

1. Baseline: every group (:mod:`fpga_mpq.mpq.widths`) at the widest candidate.
2. Sensitivity: each group alone at each lower candidate, scored by the SQNR of the network
   output against the float model on the calibration set (label free).
3. Front: from the baseline, repeatedly take the move (one group one rung down the ladder) with
   the least SQNR lost per unit of cost saved, ties to the larger saving. This is AIMET's greedy
   phase 2; a plain sort by SQNR ignores that a harmless move on a tiny layer saves almost nothing.
4. Binary search along the front: the longest prefix within ``max_drop`` (validation accuracy
   points below the float model, or with ``use_labels=False`` SQNR dB below the baseline), or the
   shortest prefix within the budget. Accuracy is assumed monotone along the front, as in AIMET;
   the chosen point itself is always checked.
5. Optionally (``finetune_epochs``), the usual practice after choosing widths: a short QAT from the
   post-training weights. A max-drop target is then judged on the fine-tuned designs (each binary
   search step is fine-tuned), so the choice is the cheapest step that meets it after fine-tuning;
   under a budget the chosen step is fine-tuned and kept when it still meets it.

Its fair peer is uniform post-training quantization (every group at one width, the same
calibration and bias correction, no training): those designs are returned as ``peers``, so a user
sees what the sensitivity search adds over simply picking one width.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fpga_mpq.errors import BadInput
from fpga_mpq.models.net import QuantNet
from fpga_mpq.mpq.front import Point
from fpga_mpq.mpq.problem import MethodResult, Problem, Target, calibrate, make_point, weighted_ops
from fpga_mpq.mpq.widths import Widths, apply_widths, structure
from fpga_mpq.train import fit, quant_from_float

CALIB_SAMPLES = 256
MAX_SQNR_DB = 300.0  # a bit-exact output; keeps differences finite


def sqnr_db(ref: np.ndarray, out: np.ndarray) -> float:
    """10·log10(E[y²] / E[(y − ŷ)²]) of the network output against the float one."""
    noise = float(np.mean((ref - out) ** 2))
    if noise == 0.0:
        return MAX_SQNR_DB
    return min(10.0 * math.log10(float(np.mean(ref**2)) / noise), MAX_SQNR_DB)


def correct_biases(qmodel: QuantNet, x_cal: np.ndarray) -> QuantNet:
    """Fold the mean output error of weight rounding into each bias, first layer first."""
    for op in weighted_ops(qmodel):
        with torch.no_grad():
            op.bias += _mean_shift(op, op.weight - op.quant_weight().value, _mean_input(qmodel, op, x_cal))
    return qmodel.eval()


def _mean_shift(op: nn.Module, dw: torch.Tensor, mean_x: torch.Tensor) -> torch.Tensor:
    """The mean output change per channel a weight change ``dw`` makes on inputs of mean ``mean_x``
    (linear in x, so the batch mean goes in; a conv's output is then averaged over its pixels)."""
    if isinstance(op, nn.Linear):
        return dw @ mean_x
    return F.conv2d(mean_x[None], dw, None, op.stride, op.padding, op.dilation, op.groups).mean(dim=(0, 2, 3))


def _mean_input(qmodel: QuantNet, op: nn.Module, x: np.ndarray) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    hook = op.register_forward_pre_hook(lambda _, args: seen.append(getattr(args[0], "value", args[0])))
    try:
        with torch.no_grad():
            qmodel(torch.from_numpy(x))
    finally:
        hook.remove()
    return seen[0].mean(dim=0)


class _Evaluator:
    """Builds, calibrates and scores configurations once each."""

    def __init__(self, problem: Problem, x_cal: np.ndarray) -> None:
        self.problem, self.x_cal = problem, x_cal
        with torch.no_grad():
            self.ref = problem.fmodel(torch.from_numpy(x_cal)).numpy()
        self.models: dict[Widths, QuantNet] = {}
        self.points: dict[Widths, Point] = {}
        self.feeds = structure(problem.spec).feeds
        self.layer_costs: dict[tuple[int, int, int], dict[str, float]] = {}

    def calibrated(self, widths: Widths) -> QuantNet:
        """The configuration with calibrated activation ranges: all its costs depend on (bias correction
        moves biases only), so pricing a move the greedy path does not take skips the correction."""
        p = self.problem
        qmodel = quant_from_float(p.fmodel, apply_widths(p.spec, widths), p.split.input_shape, p.train_cfg.seed)
        return calibrate(qmodel, self.x_cal)

    def model(self, widths: Widths) -> QuantNet:
        if widths not in self.models:
            self.models[widths] = correct_biases(self.calibrated(widths), self.x_cal)
        return self.models[widths]

    def sqnr(self, widths: Widths) -> float:
        with torch.no_grad():
            out = self.model(widths)(torch.from_numpy(self.x_cal)).numpy()
        return sqnr_db(self.ref, out)

    def point(self, widths: Widths, label: str, method: str = "ptq") -> Point:
        """Measured once per configuration; a uniform peer that is also on the ptq path (all widest,
        all lowest) is the same measurement under its own name."""
        if widths not in self.points:
            self.points[widths] = make_point(self.problem, method, label, self.model(widths), self.sqnr(widths))
        p = self.points[widths]
        return p if (p.method, p.label) == (method, label) else replace(p, method=method, label=label)

    def cost(self, widths: Widths, metric: str) -> float:
        """Summed per-layer costs; a layer's cost depends only on its weight and input widths."""
        keys = [(i, widths.get(w), widths.get(x)) for i, (w, x) in enumerate(self.feeds)]
        if any(k not in self.layer_costs for k in keys):
            model = self.models[widths] if widths in self.models else self.calibrated(widths)
            per_layer = self.problem.cost.measure_layers(model)
            self.layer_costs |= dict(zip(keys, per_layer, strict=True))
        return sum(self.layer_costs[k][metric] for k in keys)


def _front_path(problem: Problem, ev: _Evaluator, metric: str) -> tuple[list[Widths], dict]:
    """Phases 1 and 2: sensitivities, then the greedy sequence of configurations from the baseline."""
    ladders = problem.ladders
    base = ladders.widest(problem.spec)
    groups = base.groups
    base_sqnr = ev.sqnr(base)
    sens = {(g, c): ev.sqnr(base.set(g, c)) for g in groups for c in ladders.bits[:-1]}
    score = {(g, ladders.bits[-1]): base_sqnr for g in groups} | sens
    path, cur, moves = [base], base, []
    while True:
        options = []
        for k, g in enumerate(groups):
            lower = [c for c in ladders.bits if c < cur.get(g)]
            if not lower:
                continue
            nxt = cur.set(g, lower[-1])
            harm = max(score[(g, cur.get(g))] - score[(g, lower[-1])], 0.0)
            saving = ev.cost(cur, metric) - ev.cost(nxt, metric)
            options.append((harm / saving if saving > 0 else math.inf, -saving, k, nxt))
        if not options:
            break
        _, _, k, cur = min(options, key=lambda o: o[:3])
        path.append(cur)
        moves.append(f"{groups[k].name}->{cur.get(groups[k])}")
    log = {
        "baseline_sqnr_db": base_sqnr,
        "sensitivity_sqnr_db": {f"{g.name}@{c}": s for (g, c), s in sens.items()},
        "moves": moves,
        "order_metric": metric,
    }
    return path, log


def _last_true(n: int, pred) -> int:
    """Largest k in [0, n) with pred(k), given pred(0) and a monotone predicate."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if pred(mid) else (lo, mid - 1)
    return lo


def _first_true(n: int, pred) -> int:
    """Smallest k in [0, n) with pred(k), given pred(n - 1) and a monotone predicate."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if pred(mid) else (mid + 1, hi)
    return lo


def check_finetune_epochs(epochs: int) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise BadInput(f"--finetune-epochs {epochs!r}: a whole number of epochs, 0 or more")


def run(
    problem: Problem,
    target: Target,
    calib_samples: int = CALIB_SAMPLES,
    use_labels: bool = True,
    finetune_epochs: int = 0,
) -> MethodResult:
    x_cal = problem.split.x_train[:calib_samples]
    if calib_samples < 1 or len(x_cal) == 0:
        raise BadInput(f"ptq: the calibration set is empty (calib_samples={calib_samples})")
    check_finetune_epochs(finetune_epochs)
    ev = _Evaluator(problem, x_cal)
    metric = target.metric if target.budget is not None else problem.cost.headline
    path, log = _front_path(problem, ev, metric)

    def point(k: int) -> Point:
        return ev.point(path[k], f"ptq step {k}")

    tuned: dict[int, tuple[Point, QuantNet]] = {}

    def fine_tuned(k: int) -> Point:
        if k not in tuned:
            tuned[k] = _finetune(problem, point(k), ev.model(path[k]), finetune_epochs)
        return tuned[k][0]

    # with a fine-tune, a max-drop target is judged on the fine-tuned designs: the step that is chosen
    # is the one that will be used, so the search may go further down the path than post-training alone
    judged = fine_tuned if finetune_epochs and use_labels and target.budget is None else point
    if target.budget is not None:
        feasible = point(len(path) - 1).costs[metric] <= target.budget
        k = _first_true(len(path), lambda i: point(i).costs[metric] <= target.budget) if feasible else None
    elif use_labels:
        feasible = problem.meets(judged(0), target)
        k = _last_true(len(path), lambda i: problem.meets(judged(i), target)) if feasible else None
    else:
        floor = point(0).sqnr - target.max_drop
        k = _last_true(len(path), lambda i: point(i).sqnr >= floor)
        feasible = True
    front = [point(i) for i in range(len(path))]
    peers = [
        ev.point(problem.ladders.uniform(problem.spec, b), f"uniform ptq {b}", "uniform ptq")
        for b in problem.ladders.bits
    ]
    if not feasible:
        reason = _infeasible(front, target, metric, problem, judged(0))
        front += [tuned[i][0] for i in sorted(tuned)]
        return MethodResult(None, None, front, reason=reason, log=log, peers=peers)
    chosen, model = front[k], ev.model(path[k])
    if finetune_epochs:
        fine_tuned(k)
        tuned_point, tuned_model = tuned[k]
        kept = problem.meets(tuned_point, target)
        log["finetune"] = {
            "epochs": finetune_epochs,
            "val_acc_before": chosen.val_acc,
            "val_acc_after": tuned_point.val_acc,
            "kept": kept,
            "steps_fine_tuned": sorted(tuned),
        }
        if kept:
            chosen, model = tuned_point, tuned_model
        front += [tuned[i][0] for i in sorted(tuned)]
    return MethodResult(chosen, model, front, log=log, peers=peers)


def _finetune(problem: Problem, before: Point, model: QuantNet, epochs: int) -> tuple[Point, QuantNet]:
    """QAT of a configuration from its post-training weights (the post-training model stays as it was)."""
    tuned = copy.deepcopy(model)
    fit(tuned, problem.split, replace(problem.train_cfg, epochs=epochs), epochs, "ptq fine-tune")
    label = f"{before.label} + {epochs} epochs"
    return make_point(problem, "ptq fine-tuned", label, tuned.eval(), before.sqnr), tuned


def _infeasible(front: list[Point], target: Target, metric: str, problem: Problem, widest: Point) -> str:
    if target.budget is not None:
        p = front[-1]
        return (
            f"no configuration meets {target.describe()}: the cheapest ({p.label}, all lowest candidates) costs "
            f"{p.costs[metric]:g} {metric} at {100 * p.val_acc:.2f}% validation accuracy"
        )
    return f"even the widest configuration misses {target.describe()}: {problem.drop_text(widest)}"
