"""LUT / FF estimates against Yosys synthesis of the same RTL design, side by side.

For each design: our RTL estimate, da4ml's own cost estimate, FINN's published MVAU LUT formula
for the same layer shapes (MLPs only), and Yosys ``synth_xilinx``'s counts. Two sets: random MLPs
built in the IR, and small Brevitas CNNs of ``fpga_mpq.testing.CNN_ZOO`` exported to QONNX
(conv / pool costs on the RTL path). ``--fit`` synthesizes a separate set of MLPs (other seeds and
shapes) and prints the least-squares coefficients that ``fpga_mpq/estimate/rtl.py`` uses; the
reported designs are never part of the fit.

    python bench_estimate.py [--fit] [--only mlp|cnn] [--jobs 2]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import cnn_model, print_table, scratch
from scipy.optimize import nnls
from scipy.stats import spearmanr

from fpga_mpq.estimate.model import EstimateConfig
from fpga_mpq.estimate.parts import find_part
from fpga_mpq.estimate.rtl import KINDS, cost_by_kind, estimate_rtl
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.network import Activation, Dense, InputQuant, Network, accumulator_type
from fpga_mpq.ir.types import FixedType, Overflow, Rounding
from fpga_mpq.rtl.project import RtlConfig, pipeline
from fpga_mpq.rtl.synth import synthesize

PART = "xcvu13p"


@dataclass(frozen=True)
class Design:
    name: str
    widths: tuple[int, ...]  # n_in, hidden..., n_out
    weight_bits: tuple[int, ...]
    act_bits: tuple[int, ...]  # after each hidden layer; the input is 8-bit unsigned
    sparsity: float
    seed: int
    rounding: Rounding = Rounding.TRN


def _design(name: str, widths, wb, ab, sparsity=0.0, seed=0, rounding=Rounding.TRN) -> Design:
    return Design(name, tuple(widths), tuple(wb), tuple(ab), sparsity, seed, rounding)


# The reported designs: layer widths, bit-widths 2-8 and mixed, sparsity.
BENCH = [
    _design("16-32-5 w2", (16, 32, 5), (2, 2), (2,)),
    _design("16-32-5 w3", (16, 32, 5), (3, 3), (3,)),
    _design("16-32-5 w4", (16, 32, 5), (4, 4), (4,)),
    _design("16-32-5 w6", (16, 32, 5), (6, 6), (6,)),
    _design("16-32-5 w8", (16, 32, 5), (8, 8), (8,)),
    _design("16-32-5 w4 50%", (16, 32, 5), (4, 4), (4,), 0.5),
    _design("16-32-5 w8 75%", (16, 32, 5), (8, 8), (8,), 0.75),
    _design("16-16-5 w4", (16, 16, 5), (4, 4), (4,)),
    _design("16-64-5 w3", (16, 64, 5), (3, 3), (3,)),
    _design("32-32-10 w4", (32, 32, 10), (4, 4), (4,)),
    _design("8-32-32-5 w4", (8, 32, 32, 5), (4, 4, 4), (4, 4)),
    _design("16-32-16-5 mixed 6/3/2", (16, 32, 16, 5), (6, 3, 2), (4, 3)),
    _design("16-32-16-5 mixed 2/4/8", (16, 32, 16, 5), (2, 4, 8), (3, 6)),
    _design("16-24-5 mixed 5/7", (16, 24, 5), (5, 7), (5,)),
    _design("16-32-5 w4 rnd-even", (16, 32, 5), (4, 4), (4,), rounding=Rounding.RND_CONV),
    _design("16-32-5 w6 rnd", (16, 32, 5), (6, 6), (6,), rounding=Rounding.RND),
    _design("24-24-24-5 w3 25%", (24, 24, 24, 5), (3, 3, 3), (3, 3), 0.25),
    _design("16-48-5 w5 90%", (16, 48, 5), (5, 5), (5,), 0.9),
    _design("12-32-8 w2 a8", (12, 32, 8), (2, 2), (8,)),
    _design("16-32-5 w8 a2", (16, 32, 5), (8, 8), (2,)),
    _design("16-40-10 w7", (16, 40, 10), (7, 7), (7,)),
    _design("16-32-32-5 mixed 4/3/3", (16, 32, 32, 5), (4, 3, 3), (4, 4)),
]
# The fit set: other seeds and shapes.
FIT = [
    _design("fit 16-24-5 w3", (16, 24, 5), (3, 3), (3,), seed=101),
    _design("fit 16-24-5 w6", (16, 24, 5), (6, 6), (6,), seed=102),
    _design("fit 20-20-5 w8 50%", (20, 20, 5), (8, 8), (8,), 0.5, seed=103),
    _design("fit 12-32-6 w4 rnd-even", (12, 32, 6), (4, 4), (4,), seed=104, rounding=Rounding.RND_CONV),
    _design("fit 16-16-16-4 mixed", (16, 16, 16, 4), (2, 5, 7), (5, 3), seed=105),
    _design("fit 10-40-5 w2", (10, 40, 5), (2, 2), (2,), seed=106),
    _design("fit 16-28-5 w5 rnd", (16, 28, 5), (5, 5), (5,), seed=107, rounding=Rounding.RND),
    _design("fit 16-20-8 w8 a3", (16, 20, 8), (8, 8), (3,), seed=108),
    _design("fit 16-36-5 w4", (16, 36, 5), (4, 4), (4,), seed=109),
    _design("fit 20-24-6 w6 25%", (20, 24, 6), (6, 6), (6,), 0.25, seed=110),
    _design("fit 16-16-16-5 w3", (16, 16, 16, 5), (3, 3, 3), (3, 3), seed=111),
    _design("fit 8-48-5 w5", (8, 48, 5), (5, 5), (5,), seed=112),
    _design("fit 16-24-5 w7 rnd-even", (16, 24, 5), (7, 7), (7,), seed=113, rounding=Rounding.RND_CONV),
    _design("fit 16-32-5 mixed 8/2", (16, 32, 5), (8, 2), (4,), seed=114),
    _design("fit 24-20-5 w2 60%", (24, 20, 5), (2, 2), (2,), 0.6, seed=115),
    _design("fit 16-28-4 w4 a7", (16, 28, 4), (4, 4), (7,), seed=116),
]
# CNN_ZOO networks that the RTL path takes (hw_tests/test_cnn_hardware.py simulates them bit for bit).
CNNS = ("small CNN, power-of-two scales, max pool", "FINN CNV-style 1-bit/2-bit")


def build(d: Design) -> Network:
    """A random constant-weight MLP with exact types: 8-bit unsigned input, ReLU + saturating casts."""
    rng = np.random.default_rng(d.seed)
    t_in = FixedType(False, 8, 8)
    layers, src = [], "x"
    for i, (n_in, n_out) in enumerate(zip(d.widths[:-1], d.widths[1:], strict=True)):
        wb = d.weight_bits[i]
        w = rng.integers(-(2 ** (wb - 1)) + 1, 2 ** (wb - 1), size=(n_in, n_out))
        w[rng.random(w.shape) < d.sparsity] = 0
        w_type = FixedType(True, wb, 1)
        b = rng.integers(-(2**6), 2**6, size=n_out)
        b_type = FixedType(True, 8, 8 - wb + 1 - t_in.frac + t_in.frac)
        b_type = FixedType(True, 16, 16 - (t_in.frac + w_type.frac))
        acc = accumulator_type(t_in, w, w_type.frac, b, b_type.frac)
        layers.append(Dense(f"dense{i}", src, f"acc{i}", (n_out,), t_in, w, w_type, b, b_type, acc))
        src = f"acc{i}"
        last = i == len(d.widths) - 2
        if last:
            continue
        ab = d.act_bits[i]
        # keep the top act_bits of a typical pre-activation range: 2**(log2 of one std) headroom
        int_bits = max(1, math.ceil(math.log2(math.sqrt(n_in) * 2 ** (wb - 1) * 2**8)) - 3)
        t_out = FixedType(False, ab, int_bits - acc.frac * 0, d.rounding, Overflow.SAT)
        layers.append(Activation(f"relu{i}", src, f"act{i}", (n_out,), acc, True, t_out))
        src = f"act{i}"
        t_in = t_out
    return Network(InputQuant("in", "x", (d.widths[0],), FixedType(False, 8, 8), True), tuple(layers))


def finn_luts(net: Network) -> float:
    """FINN's MVAU LUT formula (c0 + c1 * P * (mult + adder tree + accumulator + thresholds)),
    fully unfolded (PE = MH, SIMD = MW) to match a fully parallel design."""
    total = 0.0
    layers = net.layers
    for i, layer in enumerate(layers):
        if not isinstance(layer, Dense):
            continue
        W, A, P, Q = layer.weight_type.width, layer.in_type.width, layer.n_out, layer.n_in
        mult = Q * (2 * math.ceil((W + A) / 6) - 1) * (W + A)
        tree = (W + A) * (2 * Q - 1)
        acc_bits = W + A + math.ceil(math.log2(Q))
        thr = comp = 0.0
        if i + 1 < len(layers) and isinstance(layers[i + 1], Activation):
            B = layers[i + 1].out.width
            thr = comp = (2**B - 1) * acc_bits
        total += 300 + 1.1 * P * (mult + tree + acc_bits + thr + comp)
    return total


def measure(d: Design) -> dict:
    net = build(d)
    return measure_network(d.name, net, finn_luts(net))


def measure_cnn(name: str, onnx: Path) -> dict:
    return measure_network(name, network_from_qonnx(onnx), None)


def measure_network(name: str, net: Network, finn_lut: float | None) -> dict:
    """Our RTL estimate, da4ml's cost and register bits, and Yosys synth_xilinx of the same Verilog."""
    part = find_part(PART)
    est = estimate_rtl(net, EstimateConfig(part))
    with tempfile.TemporaryDirectory(prefix="mpq_est_") as tmp:
        design = pipeline(net, RtlConfig(part), Path(tmp) / "rtl")
        syn = synthesize(Path(tmp) / "rtl", "mpq_top", part, 3600, Path(tmp) / "rtl" / "synth")
    costs = cost_by_kind(design.traced.comb)
    return {
        "name": name,
        "ours_lut": est.total.lut,
        "ours_ff": est.total.ff,
        "ours_dsp": est.total.dsp,
        "da4ml_lut": float(design.traced.comb.cost),
        "da4ml_ff": float(design.reg_bits),
        "finn_lut": finn_lut,
        "yosys_lut": syn.lut,
        "yosys_ff": syn.ff,
        "yosys_dsp": syn.dsp,
        "yosys_s": syn.seconds,
        **costs,
        "reg_bits": design.reg_bits,
    }


def _err(est: float, ref: float) -> float:
    return 100 * (est - ref) / ref


def _vs(est: float | None, ref: float) -> str:
    return "-" if est is None else f"{est:.0f} ({_err(est, ref):+.1f}%)"


def report(rows: list[dict]) -> None:
    table = [
        [
            r["name"],
            r["yosys_lut"],
            _vs(r["ours_lut"], r["yosys_lut"]),
            _vs(r["da4ml_lut"], r["yosys_lut"]),
            _vs(r["finn_lut"], r["yosys_lut"]),
            r["yosys_ff"],
            _vs(r["ours_ff"], r["yosys_ff"]),
            _vs(r["da4ml_ff"], r["yosys_ff"]),
            f"{r['yosys_dsp']} / {r['ours_dsp']}",
            f"{r['yosys_s']:.0f}",
        ]
        for r in rows
    ]
    print_table(
        ["design", "Yosys LUT", "ours", "da4ml", "FINN formula", "Yosys FF", "ours FF", "da4ml FF", "DSP Yosys / ours"]
        + ["synth s"],
        table,
    )
    print()
    summary = []
    for key, ref in (
        ("ours_lut", "yosys_lut"),
        ("da4ml_lut", "yosys_lut"),
        ("finn_lut", "yosys_lut"),
        ("ours_ff", "yosys_ff"),
        ("da4ml_ff", "yosys_ff"),
    ):
        if any(r[key] is None for r in rows):
            continue
        errs = np.abs([_err(r[key], r[ref]) for r in rows])
        # a rank correlation over two or three designs says nothing
        rho = spearmanr([r[key] for r in rows], [r[ref] for r in rows]).statistic if len(rows) > 3 else math.nan
        rho_text = "-" if math.isnan(rho) else f"{rho:.3f}"
        summary.append([key.replace("_", " "), f"{np.median(errs):.1f}%", f"{errs.max():.1f}%", rho_text])
    print_table(["estimator", "median |error|", "worst |error|", "rank correlation"], summary)


def fit(rows: list[dict]) -> None:
    a = np.array([[r[k] for k in KINDS] for r in rows], dtype=float)
    y = np.array([r["yosys_lut"] for r in rows], dtype=float)
    used = a.any(axis=0)
    coef = np.ones(len(KINDS))
    # non-negative least squares on relative error, so small designs weigh as much as large ones
    coef[used] = nnls(a[:, used] / y[:, None], np.ones(len(y)))[0]
    ff = np.array([r["reg_bits"] for r in rows], dtype=float)
    yff = np.array([r["yosys_ff"] for r in rows], dtype=float)
    k_ff = float(np.linalg.lstsq((ff / yff)[:, None], np.ones(len(yff)), rcond=None)[0][0])
    print("LUT_PER_COST = {" + ", ".join(f'"{k}": {c:.3f}' for k, c in zip(KINDS, coef, strict=True)) + "}")
    print(f"FF_PER_REGISTER_BIT = {k_ff:.3f}")


def _run(fn, args: list, jobs: int) -> list[dict]:
    rows = []
    with ProcessPoolExecutor(jobs) as pool:
        for r in pool.map(fn, *zip(*args, strict=True)):
            rows.append(r)
            print(f"  {r['name']}: Yosys {r['yosys_lut']} LUT in {r['yosys_s']:.0f} s", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", action="store_true", help="fit the estimator's coefficients on the fit set (MLPs)")
    p.add_argument("--only", choices=("mlp", "cnn"), help="one set of designs (default: both)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--limit", type=int, help="only the first N designs of each set")
    a = p.parse_args()
    if a.only != "cnn" or a.fit:
        start = time.perf_counter()
        designs = (FIT if a.fit else BENCH)[: a.limit]
        rows = _run(measure, [(d,) for d in designs], a.jobs)
        if a.fit:
            fit(rows)
        wall = time.perf_counter() - start
        print(f"\nRTL designs (da4ml Verilog) on {PART}, {len(rows)} MLPs, {wall:.0f} s wall;", end=" ")
        print("errors relative to Yosys synth_xilinx\n")
        report(rows)
    if a.only != "mlp" and not a.fit:
        start = time.perf_counter()
        with scratch() as tmp:
            names = CNNS[: a.limit]
            rows = _run(measure_cnn, [(n, cnn_model(n, Path(tmp))) for n in names], a.jobs)
        wall = time.perf_counter() - start
        print(f"\nCNN_ZOO networks (da4ml Verilog, unrolled) on {PART}, {len(rows)} CNNs, {wall:.0f} s wall;", end=" ")
        print("errors relative to Yosys synth_xilinx\n")
        report(rows)


if __name__ == "__main__":
    main()
