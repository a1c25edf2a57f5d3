"""Evaluated configurations, their Pareto front, the iso-accuracy cost ratio, and the CSV / PNG reports.

Reports and comparisons use test accuracy (held out from every choice); methods choose on the
validation set.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fpga_mpq.models.spec import Spec
from fpga_mpq.mpq.confidence import INTERVAL, interval
from fpga_mpq.mpq.widths import widths_of

ISO_TOLERANCE = 0.005  # half an accuracy point
CSV_METRICS = ("bops", "exact_bits", "lut", "ff", "dsp")


@dataclass(frozen=True)
class Point:
    """One evaluated configuration."""

    method: str
    label: str
    spec: Spec
    costs: dict[str, float]
    val_acc: float
    test_acc: float
    sqnr: float | None = None
    test_by_level: tuple[float, ...] | None = None  # test accuracy per quality level, when the data has levels
    levels: tuple[Point, ...] = ()  # dqmq: one point per quality level; this one is their expectation
    # one bool per validation / test sample (right or wrong): the accuracies' intervals and the paired
    # comparison with the float model the selection rule makes (:mod:`fpga_mpq.mpq.confidence`)
    val_correct: np.ndarray | None = field(default=None, compare=False, repr=False)
    test_correct: np.ndarray | None = field(default=None, compare=False, repr=False)

    def val_interval(self) -> tuple[float, float] | None:
        return None if self.val_correct is None else interval(self.val_correct)

    def test_interval(self) -> tuple[float, float] | None:
        return None if self.test_correct is None else interval(self.test_correct)

    def widths(self) -> dict[str, int]:
        """Every searched width by group name (``input``, ``layers[0].weight``, ``layers[2].add``, ...)."""
        return widths_of(self.spec).by_name()

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "label": self.label,
            "widths": self.widths(),
            "costs": self.costs,
            "val_acc": self.val_acc,
            "val_acc_interval": self.val_interval(),
            "test_acc": self.test_acc,
            "test_acc_interval": self.test_interval(),
            "interval_level": INTERVAL,
            "sqnr_db": self.sqnr,
        } | self._quality()

    def _quality(self) -> dict:
        d: dict = {}
        if self.test_by_level is not None:
            d["test_acc_by_level"] = list(self.test_by_level)
        if self.levels:
            d["widths"] = None  # one configuration per level, below
            d["levels"] = [p.to_dict() for p in self.levels]
        return d


def pareto(points: Iterable[Point], metric: str) -> list[Point]:
    """Non-dominated points (lower cost, higher test accuracy), cheapest first."""
    best: list[Point] = []
    for p in sorted(points, key=lambda p: (p.costs[metric], -p.test_acc)):
        if not best or p.test_acc > best[-1].test_acc:
            best.append(p)
    return best


@dataclass(frozen=True)
class IsoRatio:
    """The chosen design's cost over the uniform design it is compared with (``against``).
    ``beyond_uniform``: no uniform design comes within half a point of the chosen one, so the ratio is
    taken against the cheapest of the most accurate uniform designs: matching the chosen accuracy
    would cost uniform precision more than that (its accuracy rises with its cost), so the ratio is an
    upper bound."""

    value: float
    against: str
    beyond_uniform: bool

    def describe(self) -> str:
        if self.beyond_uniform:
            return (
                f"{self.value:.2f}x {self.against}, at most (the chosen design is more accurate than every "
                "uniform design; that one is the cheapest within half a point of the most accurate)"
            )
        return f"{self.value:.2f}x {self.against} (the cheapest uniform design at most half a point less accurate)"


def iso_accuracy_cost_ratio(chosen: Point, uniform: Iterable[Point], metric: str) -> IsoRatio | None:
    """chosen cost / cost of the cheapest uniform design at least as accurate as the chosen one minus
    half a point, or, beyond the uniform front, of the cheapest within half a point of the most accurate
    uniform design (:class:`IsoRatio`); ``None`` only without uniform designs."""
    uniform = list(uniform)
    if not uniform:
        return None
    reach = [p for p in uniform if p.test_acc >= chosen.test_acc - ISO_TOLERANCE]
    beyond = not reach
    if beyond:
        best = max(p.test_acc for p in uniform)
        reach = [p for p in uniform if p.test_acc >= best - ISO_TOLERANCE]
    match = min(reach, key=lambda p: p.costs[metric])
    return IsoRatio(chosen.costs[metric] / match.costs[metric], match.label, beyond)


def uniform_beaten(uniform: Iterable[Point], front: Iterable[Point], metric: str) -> list[str]:
    """Labels of the uniform designs that some point of ``front`` beats: cheaper and at most half a point
    less accurate (the issue's per-width dominance check)."""
    front = list(front)
    return [
        u.label
        for u in uniform
        if any(p.costs[metric] < u.costs[metric] and p.test_acc >= u.test_acc - ISO_TOLERANCE for p in front)
    ]


def write_csv(points: Iterable[Point], path: Path, metric: str) -> None:
    """Every evaluated configuration: one column per searched width (all points share the base spec's
    groups), all cost metrics, both accuracies with their 95% intervals; ``on_front`` marks each
    method's Pareto points."""
    points = list(points)
    groups = list(points[0].widths()) if points else []
    on_front = set()
    for method in {p.method for p in points}:
        on_front |= {id(p) for p in pareto([p for p in points if p.method == method], metric)}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["method", "label", *groups, *CSV_METRICS]
            + ["val_acc", "val_lo", "val_hi", "test_acc", "test_lo", "test_hi", "sqnr_db", "on_front"]
        )
        for p in points:
            w.writerow(
                [
                    p.method,
                    p.label,
                    *p.widths().values(),
                    *(p.costs.get(m, "") for m in CSV_METRICS),
                    f"{p.val_acc:.4f}",
                    *_bounds(p.val_interval()),
                    f"{p.test_acc:.4f}",
                    *_bounds(p.test_interval()),
                    "" if p.sqnr is None else f"{p.sqnr:.2f}",
                    int(id(p) in on_front),
                ]
            )


def _bounds(iv: tuple[float, float] | None) -> tuple[str, str]:
    return ("", "") if iv is None else (f"{iv[0]:.4f}", f"{iv[1]:.4f}")


def plot(points: Iterable[Point], path: Path, metric: str, chosen: Point | None = None) -> None:
    """Test accuracy (with its 95% interval) against cost per method, each method's front as a step
    line, the choice starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = list(points)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for method in sorted({p.method for p in points}):
        mine = [p for p in points if p.method == method]
        (line,) = ax.step(
            [p.costs[metric] for p in pareto(mine, metric)],
            [100 * p.test_acc for p in pareto(mine, metric)],
            where="post",
            label=f"{method} front",
        )
        ax.scatter([p.costs[metric] for p in mine], [100 * p.test_acc for p in mine], s=12, color=line.get_color())
        bars = [p for p in mine if p.test_correct is not None]
        if bars:
            lo_hi = np.array([p.test_interval() for p in bars]).T * 100
            acc = np.array([100 * p.test_acc for p in bars])
            ax.errorbar(
                [p.costs[metric] for p in bars],
                acc,
                yerr=[acc - lo_hi[0], lo_hi[1] - acc],
                fmt="none",
                ecolor=line.get_color(),
                alpha=0.5,
                capsize=2,
            )
    if chosen is not None:
        ax.scatter([chosen.costs[metric]], [100 * chosen.test_acc], marker="*", s=220, color="k", label="chosen")
    ax.set_xscale("log")
    ax.set_xlabel(metric)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
