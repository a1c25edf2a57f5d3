"""Does a search land on its best design? sdq, ptq and ptq with a short fine-tune against uniform QAT,
on the digits MLP, a Fashion-MNIST MLP and the Fashion-MNIST CNN, with the selection rule of
``search`` (the cheapest design whose validation drop is within ``--max-drop 1`` at 90% confidence).

Printed per task: each uniform QAT design, then per method the chosen design's LUTs, its test accuracy
with the 95% interval, the iso-accuracy ratio (its LUTs over the cheapest uniform QAT design at most
0.5 points less accurate; beyond the uniform front, over the cheapest uniform design within 0.5
points of the best one, an upper bound) and the design it is taken against, and wall time; for ptq
also the uniform post-training designs its front beats (its fair peer). ``iso_<task>.png``: every
design's test accuracy against LUTs, each method's front a step line.
The digits sdq row is timed with its uniform reference (the method and the five widths as parallel
Ray tasks on the machine's cores); the other rows reuse that task's uniform front.
Goals: sdq <= 0.6x; ptq with fine-tune <= 1.0x; ptq without it beats uniform post-training
quantization at equal cost; sdq on digits <= 3 minutes on 2 cores, uniform reference included.
``--only TEXT`` runs the tasks whose name contains TEXT.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import print_table

from fpga_mpq.data import load_split
from fpga_mpq.models.spec import DEFAULT_SPEC, LayerSpec, Spec, load_spec
from fpga_mpq.mpq.front import Point, plot
from fpga_mpq.mpq.problem import Target
from fpga_mpq.mpq.search import SearchResult, search
from fpga_mpq.mpq.widths import widths_of
from fpga_mpq.parallel import Runner
from fpga_mpq.train import TrainConfig

CANDIDATES = (2, 3, 4, 6, 8)
TARGET = Target(max_drop=1.0)
FINETUNE_EPOCHS = 3
FASHION_MLP = Spec(8, False, (LayerSpec(64, 4, 16, 4), LayerSpec(32, 4, 16, 4), LayerSpec(10, 4, 16, 8)))
TASKS = {  # name: (spec, data, epochs)
    "digits MLP 64-32-32-10": (DEFAULT_SPEC, "digits", None),
    "Fashion MLP 784-64-32-10": (FASHION_MLP, "fashion", 20),
    "Fashion CNN": ("../specs/fashion_cnn.yaml", "fashion", None),
}
HEADERS = ["task", "method", "chosen", "LUTs", "test % [95%]", "float %", "iso ratio", "against", "goal", "beats"]
HEADERS += ["wall s"]


def run_task(name: str, runner: Runner) -> list[list[str]]:
    spec, data, epochs = TASKS[name]
    spec = load_spec(spec) if isinstance(spec, str) else spec
    split = load_split(data, spec).for_spec(spec)
    cfg = TrainConfig.for_spec(spec, epochs, 0, len(split.y_train))
    rows, reference, points = [], None, []
    for method, options, goal in (
        ("sdq", {}, "<= 0.6"),
        ("ptq", {}, "beats uniform ptq"),
        ("ptq", {"finetune_epochs": FINETUNE_EPOCHS}, "<= 1.0"),
    ):
        t = time.perf_counter()
        r = search(
            method, spec, split, CANDIDATES, TARGET, train_cfg=cfg, uniform_front=reference, runner=runner, **options
        )
        wall = time.perf_counter() - t
        if reference is None:
            reference = r.uniform
            rows += [_uniform_row(name, p, r.float_test, wall) for p in reference]
            points += reference
        label = method + (f" + {FINETUNE_EPOCHS} ep fine-tune" if options else "")
        rows.append(_row(name, label, r, goal, wall))
        points += [p for p in r.front if p.method not in {q.method for q in points}]  # ptq's points once
        print("done:", " | ".join(rows[-1]), flush=True)
    figure = Path(f"iso_{name.split()[0].lower()}_{name.split()[1].lower()}.png")
    plot(points, figure, "lut")
    print("plot:", figure.resolve())
    return rows


def _uniform_row(task: str, p: Point, float_test: float, wall: float) -> list[str]:
    lo, hi = p.test_interval()
    return [
        task,
        "uniform QAT",
        widths_of(p.spec).label(),
        f"{p.costs['lut']:.0f}",
        f"{100 * p.test_acc:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
        f"{100 * float_test:.1f}",
        "1.00",
        "itself",
        "-",
        "-",
        f"{wall:.0f} (with sdq)",
    ]


def _row(task: str, method: str, r: SearchResult, goal: str, wall: float) -> list[str]:
    c = r.chosen
    if c is None:
        return [task, method, "infeasible", "-", "-", f"{100 * r.float_test:.1f}", "-", "-", goal, "-", f"{wall:.0f}"]
    lo, hi = c.test_interval()
    iso = r.iso
    beats = r.summary().get("peer_beaten")
    return [
        task,
        method,
        widths_of(c.spec).label(),
        f"{c.costs['lut']:.0f}",
        f"{100 * c.test_acc:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
        f"{100 * r.float_test:.1f}",
        "-" if iso is None else f"{iso.value:.2f}",
        "-" if iso is None else iso.against + (" (beyond the front)" if iso.beyond_uniform else ""),
        goal,
        "-" if beats is None else " ".join(b.split()[-1] for b in beats) or "none",
        f"{wall:.0f}",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="run the tasks whose name contains this text")
    a = p.parse_args()
    runner = Runner("local")
    rows = [row for name in TASKS if a.only.lower() in name.lower() for row in run_task(name, runner)]
    print(f"\nSearch choice vs uniform QAT, --max-drop {TARGET.max_drop}, candidates {CANDIDATES}, cost lut")
    print_table(HEADERS, rows)


if __name__ == "__main__":
    main()
