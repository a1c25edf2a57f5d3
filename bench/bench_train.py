"""Training throughput: the uniform ladder (widths 2,3,4,6,8; 20 epochs) of a Fashion-MNIST MLP
784-64-32-10, as ``search --method uniform --data fashion`` runs it, against the configuration it
replaced, measured in the same run.

Now: batch size from the training set's size (128 on 50,000 images), one torch thread per training,
the widths as parallel Ray tasks on the machine's cores. Before: batch size 32, torch's default
threads, the widths one after another. The old configuration is measured for one epoch of float
training and one of 4-bit QAT, and its ladder time is extrapolated from those rates (running it in
full takes about an hour). Goal: the ladder <= 10 minutes on 2 cores, accuracies within 0.3 points
of the old ones (float 89.1%, uniform 2/3/4-bit 86.1/88.2/88.8% test, from the issue).
"""

from __future__ import annotations

import time

import torch
from common import print_table

from fpga_mpq.data import Split, load_split
from fpga_mpq.models.net import FloatNet
from fpga_mpq.models.spec import LayerSpec, Spec
from fpga_mpq.mpq.problem import Target
from fpga_mpq.mpq.search import search
from fpga_mpq.parallel import Runner
from fpga_mpq.train import TrainConfig, _fit, quant_from_float

EPOCHS = 20
WIDTHS = (2, 3, 4, 6, 8)
SPEC = Spec(8, False, (LayerSpec(64, 4, 16, 4), LayerSpec(32, 4, 16, 4), LayerSpec(10, 4, 16, 8)))
OLD = {"float": 89.1, "uniform 2": 86.1, "uniform 3": 88.2, "uniform 4": 88.8}  # the run, batch 32


def old_rates(split: Split) -> tuple[float, float]:
    """Samples per second of the old configuration, batch 32 on torch's default threads (the loop
    inside ``fit``, without its one-thread pin): one epoch of float training, one of 4-bit QAT."""
    cfg = TrainConfig(epochs=1, float_epochs=1, batch_size=32)
    torch.manual_seed(0)
    fmodel = FloatNet(SPEC, split.input_shape)
    t = time.perf_counter()
    _fit(fmodel, split, cfg, 1, "old float")
    float_rate = len(split.y_train) / (time.perf_counter() - t)
    qmodel = quant_from_float(fmodel, SPEC, split.input_shape, 0)
    t = time.perf_counter()
    _fit(qmodel, split, cfg, 1, "old QAT")
    return float_rate, len(split.y_train) / (time.perf_counter() - t)


def main() -> None:
    split = load_split("fashion").flat()
    n = len(split.y_train)
    cfg = TrainConfig.for_spec(SPEC, EPOCHS, 0, n)
    t = time.perf_counter()
    r = search("uniform", SPEC, split, WIDTHS, Target(max_drop=100.0), train_cfg=cfg, runner=Runner("local"))
    wall = time.perf_counter() - t
    float_rate, qat_rate = old_rates(split)
    old_wall = EPOCHS * n / float_rate + len(WIDTHS) * EPOCHS * n / qat_rate

    rows = [["float", f"{100 * r.float_test:.1f}", str(OLD["float"]), f"{EPOCHS * n / r.seconds['float']:.0f}", "-"]]
    for p in r.front:
        lo, hi = p.test_interval()
        rate = EPOCHS * n / r.seconds[p.label]
        rows.append(
            [
                p.label,
                f"{100 * p.test_acc:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
                str(OLD.get(p.label, "-")),
                f"{rate:.0f}",
                f"{r.seconds[p.label]:.0f}",
            ]
        )
    print(f"\nTraining throughput: Fashion-MNIST MLP 784-64-32-10, {n:,} training images, {EPOCHS} epochs")
    print_table(["model", "test % [95%]", "old test %", "samples/s (per task)", "task s"], rows)
    print()
    old = "old: batch 32, default threads, serial"
    now = f"now: batch {cfg.batch_size}, 1 thread per task, Ray"
    print_table(
        ["configuration", "float samples/s", "QAT samples/s", "ladder wall (float + 5 widths)", "ratio"],
        [
            [old, f"{float_rate:.0f}", f"{qat_rate:.0f}", f"{old_wall / 60:.1f} min (extrapolated)", "1.00"],
            [now, "-", "-", f"{wall / 60:.1f} min (measured)", f"{wall / old_wall:.2f}"],
        ],
    )
    print(f"goal: <= 10 min: {'met' if wall <= 600 else 'missed'}")


if __name__ == "__main__":
    main()
