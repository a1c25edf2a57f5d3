"""HGQ2 side by side with our designs on the Fashion-MNIST MLP 784-64-32-10, all priced the same way.

HGQ2 (PyPI ``hgq2``, Keras 3 on the torch backend; ``make bench`` installs it for this bench only)
learns a width per weight and per input, pushed down by a penalty beta x EBOPs. It trains here at
several beta with the same data (50k/10k/10k), epochs (20), batch size and Adam learning rate as our
QAT. Ours: the uniform QAT ladder (widths 2,3,4,6,8) and the design ``search --method sdq --max-drop 1``
chooses (its uniform reference is the same ladder).

Every design is priced by its constant-weight products only (the part both flows must build; biases,
ReLUs and the quantizers are left out for both), two ways:
* ``EBOPs`` = sum over every product of input bits x effective weight bits (our ``exact_bits``: a
  weight's bit length without trailing zeros, plus its sign; 0 for a zero weight or a 0-bit input),
  with HGQ2's own per-input widths. HGQ2's own EBOPs figure is printed beside it as a check.
* ``da4ml LUT``: da4ml's shift-and-add network of each layer's products, weighted by our RTL
  estimator's fitted LUTs per unit of da4ml cost (``fpga_mpq/estimate/rtl.py``), every input at its own
  width. da4ml's solver grows about as n_in^2.8 (784x64 does not finish in an hour on this machine),
  so a layer is solved in blocks of ``BLOCK`` inputs whose partial sums are added in the same trace:
  sharing across blocks is lost, alike for every design. Yosys is not run: the first layer alone is
  50,176 products, beyond what synthesising a design per row of this table allows here.
The LUT column of ``bench_iso.py`` (our HLS estimator) is printed for our designs.
Goal (issue 23): our front at or below HGQ2's LUTs at equal accuracy.
Usage: python bench_hgq2.py [--betas 1e-6,3e-6,1e-5] [--epochs 20]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from common import print_table
from da4ml.trace import FixedVariableArray, comb_trace

from fpga_mpq.data import Split, load_split
from fpga_mpq.estimate.rtl import cost_by_kind, lut_from_costs
from fpga_mpq.models.spec import LayerSpec, Spec
from fpga_mpq.mpq.confidence import interval
from fpga_mpq.mpq.cost import CostModel, effective_bits, layer_quants
from fpga_mpq.mpq.problem import Target, check_candidates
from fpga_mpq.mpq.search import search
from fpga_mpq.mpq.widths import apply_widths, widths_of
from fpga_mpq.parallel import Runner
from fpga_mpq.rtl.trace import HW, kif
from fpga_mpq.train import TrainConfig, correct, train

CANDIDATES = (2, 3, 4, 6, 8)
SPEC = Spec(8, False, (LayerSpec(64, 4, 16, 4), LayerSpec(32, 4, 16, 4), LayerSpec(10, 4, 16, 8)))
BLOCK = 56  # inputs per da4ml solve: 784 = 14 blocks
HEADERS = ["design", "widths", "test % [95%]", "EBOPs", "HGQ2 EBOPs", "da4ml LUT", "HLS est. LUT", "train s"]


class Layer:
    """One dense layer's products: integer weights (n_in, n_out) at ``2**-w_frac``, and per input its
    da4ml (keep_negative, integer, fraction) bits."""

    def __init__(self, weights: np.ndarray, w_frac: int, k: np.ndarray, i: np.ndarray, f: np.ndarray) -> None:
        self.weights, self.w_frac, self.k, self.i, self.f = weights, w_frac, k, i, f

    def ebops(self) -> float:
        in_bits = np.maximum(self.k + self.i + self.f, 0)
        return float(in_bits @ effective_bits(self.weights, True).sum(axis=1))

    def da4ml_lut(self) -> float:
        x = FixedVariableArray.from_kif(self.k, self.i, self.f, hwconf=HW)
        w = self.weights * 2.0**-self.w_frac
        y = sum(x[s : s + BLOCK] @ w[s : s + BLOCK] for s in range(0, len(w), BLOCK))
        return lut_from_costs(cost_by_kind(comb_trace(x, y)))


def integer_grid(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Dyadic values as integers at the smallest common fraction: (integers, fraction bits)."""
    for frac in range(0, 40):
        scaled = values * 2.0**frac
        if np.array_equal(scaled, np.round(scaled)):
            return np.round(scaled).astype(np.int64), frac
    raise ValueError("weights are not dyadic")


def our_layers(model: torch.nn.Module) -> list[Layer]:
    out = []
    for lq in layer_quants(model):
        k, i, f = kif(lq.in_type)
        n = lq.weights.shape[0]
        out.append(Layer(lq.weights, lq.w_type.frac, np.full(n, k), np.full(n, i), np.full(n, f)))
    return out


def hgq2_model(beta: float):
    import keras
    from hgq.config import LayerConfigScope, QuantizerConfigScope
    from hgq.layers import QDense

    with (
        QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"),
        QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP"),
        LayerConfigScope(enable_ebops=True, beta0=beta),
    ):
        return keras.Sequential(
            [
                keras.Input((784,)),
                QDense(64, activation="relu"),
                QDense(32, activation="relu"),
                QDense(10),
            ]
        )


def hgq2_layers(model) -> tuple[list[Layer], float]:
    """Each QDense's products as trained, after ``trace_minmax`` fixed the integer bits; and HGQ2's EBOPs."""
    from keras import ops

    layers, own = [], 0.0
    for layer in model.layers:
        n_in = layer.kernel.shape[0]
        weights, w_frac = integer_grid(ops.convert_to_numpy(layer.qkernel).astype(np.float64))
        k, i, f = (
            np.broadcast_to(ops.convert_to_numpy(v), (1, n_in)).ravel().astype(np.int64) for v in layer.iq.quantizer.kif
        )
        layers.append(Layer(weights, w_frac, k, i, f))
        own += float(ops.convert_to_numpy(layer._ebops))
    return layers, own


def train_hgq2(beta: float, split: Split, cfg: TrainConfig) -> tuple[list[Layer], float, np.ndarray, float]:
    import keras
    from hgq.utils import trace_minmax
    from hgq.utils.sugar import FreeEBOPs

    keras.utils.set_random_seed(cfg.seed)
    model = hgq2_model(beta)
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(cfg.lr, cfg.epochs * len(split.x_train) // cfg.batch_size)
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    t = time.perf_counter()
    model.fit(
        split.x_train, split.y_train, batch_size=cfg.batch_size, epochs=cfg.epochs, callbacks=[FreeEBOPs()], verbose=0
    )
    seconds = time.perf_counter() - t
    trace_minmax(model, split.x_train, batch_size=4096)
    logits = model.predict(split.x_test, batch_size=4096, verbose=0)
    layers, own = hgq2_layers(model)
    return layers, own, np.argmax(logits, axis=1) == split.y_test, seconds


def row(
    name: str, widths: str, right: np.ndarray, layers: list[Layer], own: str, hls: str, seconds: float
) -> list[str]:
    lo, hi = interval(right)
    ebops = sum(la.ebops() for la in layers)
    lut = sum(la.da4ml_lut() for la in layers)
    print(f"priced {name}: {ebops:.0f} EBOPs, {lut:.0f} da4ml LUT", flush=True)
    return [
        name,
        widths,
        f"{100 * right.mean():.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
        f"{ebops:.0f}",
        own,
        f"{lut:.0f}",
        hls,
        f"{seconds:.0f}",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--betas", default="1e-6,3e-6,1e-5", help="HGQ2's EBOPs penalties, comma-separated")
    p.add_argument("--epochs", type=int, default=20)
    a = p.parse_args()
    split = load_split("fashion", SPEC).for_spec(SPEC)
    cfg = TrainConfig.for_spec(SPEC, a.epochs, 0, len(split.y_train))
    rows, plotted = [], []

    torch.set_num_threads(2)
    for beta in (float(b) for b in a.betas.split(",")):
        layers, own, right, seconds = train_hgq2(beta, split, cfg)
        rows.append(row(f"HGQ2 beta={beta:g}", "per weight / input", right, layers, f"{own:.0f}", "-", seconds))
        plotted.append(("HGQ2", float(rows[-1][5]), right.mean()))

    t = time.perf_counter()
    r = search("sdq", SPEC, split, CANDIDATES, Target(max_drop=1.0), train_cfg=cfg, runner=Runner("local"))
    sdq_seconds = time.perf_counter() - t
    ladders = check_candidates(CANDIDATES)
    for point in r.uniform:
        bits = int(point.label.split()[-1])
        t = time.perf_counter()
        model = train(
            apply_widths(SPEC, ladders.uniform(SPEC, bits)), split, cfg
        ).model  # retrained: a search keeps only its choice
        point_seconds = time.perf_counter() - t
        right = correct(model, split.x_test, split.y_test)
        hls = f"{CostModel().measure(model)['lut']:.0f}"
        rows.append(row(point.label, widths_of(point.spec).label(), right, our_layers(model), "-", hls, point_seconds))
        plotted.append(("uniform QAT", float(rows[-1][5]), right.mean()))
    if r.chosen is not None:
        right = correct(r.model, split.x_test, split.y_test)
        widths = widths_of(r.chosen.spec).label()
        rows.append(
            row(
                "sdq --max-drop 1", widths, right, our_layers(r.model), "-", f"{r.chosen.costs['lut']:.0f}", sdq_seconds
            )
        )
        plotted.append(("sdq", float(rows[-1][5]), right.mean()))

    print(f"\nFashion MLP 784-64-32-10, {cfg.epochs} epochs, batch {cfg.batch_size}; products priced alike")
    print_table(HEADERS, rows)
    figure = Path("hgq2_fashion_mlp.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(m for m, _, _ in plotted):
        pts = sorted((lut, acc) for m, lut, acc in plotted if m == method)
        ax.plot([q[0] for q in pts], [100 * q[1] for q in pts], "o-", label=method)
    ax.set(xscale="log", xlabel="da4ml LUT (constant-weight products)", ylabel="test accuracy (%)")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log minor labels overlap
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(figure, dpi=120)
    print("plot:", figure.resolve())


if __name__ == "__main__":
    main()
