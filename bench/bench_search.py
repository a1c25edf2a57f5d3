"""Mixed-precision search side by side: uniform QAT, post-training (ptq) and SDQ on the same tasks.

Per task, one float model and one uniform front (every searched quantizer at the same width, QAT)
that ptq and sdq are compared with. Printed: the chosen design for ``--max-drop 1.0``, its
iso-accuracy cost ratio against the uniform front, its cost against uniform 8-bit, the uniform
widths some point of the method's front beats (cheaper, at most 0.5 points less accurate), the
method's wall time, and every method's Pareto front (test accuracy vs estimated LUTs and vs BOPs).
Goals: iso ratio <= 0.6 (stretch 0.5); ptq <= 60 s, sdq <= 5 min on 2 cores for the digits MLP.
Tasks run in parallel, one per core, one torch thread each.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np
from common import print_table

from fpga_mpq.data import Split, load_digits_arrays, load_split, split_arrays
from fpga_mpq.models.spec import DEFAULT_SPEC, LayerSpec, Spec
from fpga_mpq.mpq.front import pareto, uniform_beaten
from fpga_mpq.mpq.problem import Target
from fpga_mpq.mpq.search import SearchResult, search

CANDIDATES = (2, 3, 4, 5, 6, 8)
TARGET = Target(max_drop=1.0)
JET_SPEC = Spec(8, False, tuple(LayerSpec(u, 8, 16, 8) for u in (64, 32, 32, 5)))
METHODS = ("uniform", "ptq", "sdq")


def corrupted_digits(copies: int = 4) -> Split:
    """Digits, each image seen ``copies`` times with its own random blur and Gaussian noise: a task that
    does not saturate at 3 bits, with 4x the validation and test samples (split by image first, so no
    image is in two sets)."""
    x, y = load_digits_arrays()
    clean = split_arrays(x, y)
    rng = np.random.default_rng(1)

    def corrupt(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        img = np.repeat(x.reshape(-1, 8, 8), copies, axis=0)
        pad = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="edge")
        box = sum(pad[:, i : i + 8, j : j + 8] for i in range(3) for j in range(3)) / 9.0
        mix = rng.uniform(0.0, 1.0, size=(len(img), 1, 1))  # blur strength per copy
        noisy = (1 - mix) * img + mix * box + rng.normal(0.0, 0.2, size=img.shape)
        return np.clip(noisy, 0.0, 1.0).reshape(len(img), 64).astype(np.float32), np.repeat(y, copies)

    return Split(
        *corrupt(clean.x_train, clean.y_train), *corrupt(clean.x_val, clean.y_val), *corrupt(clean.x_test, clean.y_test)
    )


def jet_like(n: int = 8000) -> Split:
    """A 16-feature, 5-class task (overlapping Gaussian clusters) for the jet-tagging MLP, scaled to [0, 1]."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n, n_features=16, n_informative=10, n_redundant=2, n_classes=5, n_clusters_per_class=2,
        class_sep=1.5, random_state=0,
    )  # fmt: skip
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    return split_arrays(x.astype(np.float32), y.astype(np.int64))


TASKS = {  # the slowest first, so the other core takes the two digits tasks meanwhile
    "jet-like 16-64-32-32-5": (JET_SPEC, jet_like),
    "noisy digits 64-32-32-10": (DEFAULT_SPEC, corrupted_digits),
    "digits 64-32-32-10": (DEFAULT_SPEC, load_split),
}
HEADERS = ["task", "method", "chosen", "test %", "float %", "BOPs", "LUTs", "iso ratio", "vs uniform 8"]
HEADERS += ["beats uniform", "method s"]


def run_task(task: str) -> tuple[list[list[str]], list[list[str]]]:
    """Every method on one task (ptq and sdq reuse the uniform run's front): table rows and fronts."""
    import torch

    torch.set_num_threads(1)
    spec, make_split = TASKS[task]
    split = make_split()
    rows, fronts, uniform_front = [], [], None
    for method in METHODS:
        r = search(method, spec, split, CANDIDATES, TARGET, seed=0, uniform_front=uniform_front)
        uniform_front = uniform_front or r.front
        rows.append(_row(task, r))
        fronts += [[task, method, m, _front(r.front, m)] for m in ("bops", r.cost_metric)]
        print("done:", " | ".join(rows[-1]), flush=True)
    return rows, fronts


def _front(points, metric: str) -> str:
    return " ".join(f"{p.costs[metric]:.0f}:{100 * p.test_acc:.1f}" for p in pareto(points, metric))


def _row(task: str, r: SearchResult) -> list[str]:
    c, metric = r.chosen, r.cost_metric
    if c is None:
        return [task, r.method, "infeasible", *["-"] * 7, f"{r.seconds[r.method]:.1f}"]
    ratio = r.iso_accuracy_cost_ratio
    vs8 = r.ratios_vs_uniform().get("uniform 8")
    return [
        task,
        r.method,
        c.label if r.method != "sdq" else c.label.split(" ", 2)[-1],
        f"{100 * c.test_acc:.1f}",
        f"{100 * r.float_test:.1f}",
        f"{c.costs['bops']:.0f}",
        f"{c.costs[metric]:.0f}",
        "beyond uniform front" if ratio is None else f"{ratio:.2f}",
        "-" if vs8 is None else f"{vs8:.2f}",
        " ".join(label.split()[-1] for label in uniform_beaten(r.uniform, r.front, metric)) or "none",
        f"{r.seconds[r.method]:.1f}",
    ]


def main() -> None:
    with ProcessPoolExecutor(2) as ex:
        results = list(ex.map(run_task, TASKS))
    print(f"\nMixed-precision search, --max-drop {TARGET.max_drop}, candidates {CANDIDATES}, cost lut (HLS estimate)")
    print_table(HEADERS, [row for rows, _ in results for row in rows])
    print("\nFronts (cost:test accuracy %, Pareto points only)")
    print_table(["task", "method", "metric", "front"], [f for _, fronts in results for f in fronts])


if __name__ == "__main__":
    main()
