"""Mixed-precision search side by side: uniform QAT, post-training (ptq) and SDQ, one run per method.

Per task and method: the front (test accuracy vs BOPs and vs LUTs), the chosen design for
``--max-drop 1.0``, its iso-accuracy cost ratio against the uniform front, and the method's wall time.
Goals: ratio <= 0.6 (stretch 0.5) on the digits MLP; ptq <= 60 s, sdq <= 5 min on 2 cores.
"""

from __future__ import annotations

import time

import numpy as np
from common import print_table

from fpga_mpq.data import SPLIT_SEED, Split, load_split
from fpga_mpq.models.spec import DEFAULT_SPEC, LayerSpec, Spec
from fpga_mpq.mpq import Target
from fpga_mpq.mpq.front import pareto
from fpga_mpq.mpq.search import search

CANDIDATES = (2, 3, 4, 5, 6, 8)
TARGET = Target(max_drop=1.0)
SYNTH_SPEC = Spec(8, False, tuple(LayerSpec(u, 8, 16, 8) for u in (64, 32, 32, 5)))


def synthetic_split(n: int = 3000) -> Split:
    """A harder 16-feature, 5-class task (overlapping Gaussian clusters), scaled to [0, 1] for the unsigned input."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n, n_features=16, n_informative=10, n_redundant=2, n_classes=5, n_clusters_per_class=2,
        class_sep=1.2, random_state=0,
    )  # fmt: skip
    x = ((x - x.min(0)) / (x.max(0) - x.min(0))).astype(np.float32)
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    x, y = x[order], y[order].astype(np.int64)
    a, b = int(0.6 * n), int(0.8 * n)
    return Split(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:])


def _front(points, metric: str) -> str:
    return " ".join(f"{p.costs[metric]:.0f}:{100 * p.test_acc:.1f}" for p in pareto(points, metric))


def main() -> None:
    tasks = {
        "digits 64-32-32-10": (DEFAULT_SPEC, load_split()),
        "synthetic 16-64-32-32-5": (SYNTH_SPEC, synthetic_split()),
    }
    rows, fronts = [], []
    for task, (spec, split) in tasks.items():
        for method in ("uniform", "ptq", "sdq"):
            t = time.perf_counter()
            r = search(method, spec, split, CANDIDATES, TARGET, seed=0)
            total = time.perf_counter() - t
            metric = r.cost_metric
            c = r.chosen
            ratio = "-" if r.iso_accuracy_cost_ratio is None else f"{r.iso_accuracy_cost_ratio:.2f}"
            if c is not None and r.iso_accuracy_cost_ratio is None:
                ratio = "beyond uniform front"
            rows.append(
                [
                    task,
                    method,
                    "infeasible" if c is None else c.label.split(" ", 2)[-1] if method == "sdq" else c.label,
                    "-" if c is None else f"{100 * c.test_acc:.1f}",
                    f"{100 * r.float_test:.1f}",
                    "-" if c is None else f"{c.costs['bops']:.0f}",
                    "-" if c is None else f"{c.costs.get('lut', float('nan')):.0f}",
                    ratio,
                    f"{r.seconds[method]:.1f}",
                    f"{total:.1f}",
                ]
            )
            for m in ("bops", metric):
                fronts.append([task, method, m, _front(r.front, m)])
            print("done:", " | ".join(rows[-1]), flush=True)
    print(f"Mixed-precision search, --max-drop {TARGET.max_drop}, candidates {CANDIDATES} (iso ratio on {metric})")
    print_table(
        ["task", "method", "chosen", "test %", "float %", "BOPs", "LUTs", "iso ratio", "method s", "total s"], rows
    )
    print("\nFronts (cost:test accuracy %, Pareto points only)")
    print_table(["task", "method", "metric", "front"], fronts)


if __name__ == "__main__":
    main()
