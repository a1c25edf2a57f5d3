"""QAT throughput before and after the training twin, and the uniform ladder's wall time, in one run.

Part 1, per network (the Fashion-MNIST MLP 784-64-32-10 at 20 epochs and ``specs/fashion_cnn.yaml`` at
its 3, batch 128, one torch thread, 50,000 training images): one float model, then the same QAT
twice from it with the same seed. Before: the loop ``fit`` ran until this change, the Brevitas
model's own forward pass and torch's default Adam. After: ``fit`` as it is, the model's twin
(``fpga_mpq/train/twin.py``) and fused Adam. Printed: samples/s over the QAT epochs (the first epoch
apart, where Brevitas' activation statistics run), test accuracy with its 95% interval, the ratio.
Goals: >= 5x the samples/s at equal accuracy (+-0.3 points).

Part 2: the uniform ladder (widths 2,3,4,6,8; 20 epochs) of the MLP as ``search --method uniform
--data fashion`` runs it (one Ray task per width, one thread each). Goal: <= 3 minutes on 2 cores.
``--only mlp|cnn|ladder`` runs one part.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from common import print_table
from torch import nn

from fpga_mpq.data import Split, load_split
from fpga_mpq.models.spec import LayerSpec, Spec, load_spec
from fpga_mpq.mpq.confidence import interval
from fpga_mpq.mpq.problem import Target
from fpga_mpq.mpq.search import search
from fpga_mpq.parallel import Runner, one_thread
from fpga_mpq.train import TrainConfig, correct, fit, quant_from_float, train_float

EPOCHS = 20
WIDTHS = (2, 3, 4, 6, 8)
MLP = Spec(8, False, (LayerSpec(64, 4, 16, 4), LayerSpec(32, 4, 16, 4), LayerSpec(10, 4, 16, 8)))
NETWORKS = {"mlp": ("Fashion MLP 784-64-32-10", MLP, EPOCHS), "cnn": ("Fashion CNN", "../specs/fashion_cnn.yaml", None)}


def fit_before(fresh: Callable[[], nn.Module], split: Split, cfg: TrainConfig, epochs: int) -> tuple:
    """The training loop as it was: the Brevitas model's own forward, torch's default Adam. Returns
    the trained model and each epoch's seconds."""
    model = fresh()
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    with one_thread():
        for _ in range(epochs):
            t = time.perf_counter()
            model.train()
            order = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                opt.zero_grad()
                loss_fn(model(x[idx]), y[idx]).backward()
                opt.step()
            sched.step()
            seconds.append(time.perf_counter() - t)
    return model, seconds


def fit_after(fresh: Callable[[], nn.Module], split: Split, cfg: TrainConfig, epochs: int) -> tuple:
    """``fit`` as it is; its first epoch is timed in a run of one epoch from the same start (``fit``
    has no per-epoch clock), the others as the rest of the full run."""
    t = time.perf_counter()
    fit(fresh(), split, cfg, 1, "after, first epoch")
    one = time.perf_counter() - t
    model = fresh()
    t = time.perf_counter()
    fit(model, split, cfg, epochs, "after")
    total = time.perf_counter() - t
    return model, [one] + [(total - one) / max(epochs - 1, 1)] * (epochs - 1)


def throughput(key: str) -> list[list[str]]:
    name, spec, epochs = NETWORKS[key]
    spec = load_spec(spec) if isinstance(spec, str) else spec
    split = load_split("fashion", spec).for_spec(spec)
    n = len(split.y_train)
    cfg = TrainConfig.for_spec(spec, epochs, 0, n)
    fmodel = train_float(spec, split, cfg)
    rows, rates = [], {}
    for label, run in (("before: Brevitas forward, Adam", fit_before), ("after: twin, fused Adam", fit_after)):
        model, seconds = run(
            lambda: quant_from_float(fmodel, spec, split.input_shape, cfg.seed), split, cfg, cfg.epochs
        )
        right = correct(model.eval(), split.x_test, split.y_test)
        lo, hi = interval(right)
        rest = n * (len(seconds) - 1) / max(sum(seconds[1:]), 1e-9)
        rates[label] = rest
        rows.append(
            [
                name,
                label,
                f"{n / seconds[0]:.0f}",
                f"{rest:.0f}",
                f"{sum(seconds):.0f}",
                f"{100 * right.mean():.2f} [{100 * lo:.1f}, {100 * hi:.1f}]",
            ]
        )
        print("done:", " | ".join(rows[-1]), flush=True)
    before, after = rates.values()
    rows[-1].append(f"{after / before:.2f}x")
    rows[0].append("1.00x")
    return rows


def ladder() -> None:
    split = load_split("fashion").flat()
    cfg = TrainConfig.for_spec(MLP, EPOCHS, 0, len(split.y_train))
    t = time.perf_counter()
    r = search("uniform", MLP, split, WIDTHS, Target(max_drop=100.0), train_cfg=cfg, runner=Runner("local"))
    wall = time.perf_counter() - t
    rows = [["float", f"{100 * r.float_test:.2f}", f"{r.seconds['float']:.0f}"]]
    for p in r.front:
        lo, hi = p.test_interval()
        rows.append([p.label, f"{100 * p.test_acc:.2f} [{100 * lo:.1f}, {100 * hi:.1f}]", f"{r.seconds[p.label]:.0f}"])
    print(f"\nUniform ladder {WIDTHS}, Fashion MLP, {EPOCHS} epochs, batch {cfg.batch_size}, Ray tasks")
    print_table(["design", "test % [95%]", "task s"], rows)
    print(f"ladder wall {wall / 60:.1f} min (float + 5 widths); goal <= 3 min: {'met' if wall <= 180 else 'missed'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="mlp, cnn or ladder")
    a = p.parse_args()
    rows = [row for key in NETWORKS if a.only in ("", key) for row in throughput(key)]
    if rows:
        print("\nQAT throughput, batch 128, one thread, 50,000 images")
        print_table(["network", "loop", "samples/s epoch 1", "samples/s later", "QAT s", "test % [95%]", "ratio"], rows)
        print("goal: >= 5x at equal accuracy (+-0.3 points)")
    if a.only in ("", "ladder"):
        ladder()


if __name__ == "__main__":
    main()
