"""C simulation: build the generated project with g++ and compare every output with the golden model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.golden import Trace, host_input, run
from fpga_mpq.ir.network import Network
from fpga_mpq.tools import run_tool


@dataclass(frozen=True)
class CsimResult:
    samples: int
    outputs: int
    mismatches: int
    first_mismatch: dict | None
    softmax_max_abs_error: float | None
    softmax_tolerance: float | None
    softmax_out_of_tolerance: int | None
    layers: list[dict] | None = None  # with --trace: mismatches per layer, in order

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and not self.softmax_out_of_tolerance


def random_inputs(net: Network, n: int, seed: int) -> np.ndarray:
    """Inputs across the input type's whole range: uniform beyond both ends (saturating), exact
    rounding ties, and the extremes themselves."""
    t = net.input.out
    rng = np.random.default_rng(seed)
    lsb = 2.0**-t.frac
    lo, hi = t.min_int * lsb, t.max_int * lsb
    span = hi - lo + lsb
    x = rng.uniform(lo - 0.25 * span, hi + 0.25 * span, size=(n, net.input.n))
    ties = (rng.integers(t.min_int, t.max_int + 1, size=x.shape) + 0.5) * lsb
    pick = rng.random(x.shape)
    x = np.where(pick < 0.15, ties, x)
    x = np.where(pick > 0.95, rng.choice([lo, hi, lo - lsb, hi + lsb], size=x.shape), x)
    return x.astype(np.float32)


def _write_rows(path: Path, rows: np.ndarray) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(" ".join(repr(float(v)) for v in row) + "\n")


def write_testbench_data(net: Network, x: np.ndarray, tb: Path) -> Trace:
    """Write inputs (float32 values, printed exactly) and the golden model's outputs for the testbench."""
    trace = run(net, x)
    _write_rows(tb / "inputs.txt", host_input(net, x))
    _write_rows(tb / "golden_outputs.txt", trace.logits)
    if trace.softmax is not None:
        _write_rows(tb / "golden_softmax.txt", trace.softmax)
    return trace


def _read_rows(path: Path, n_cols: int) -> np.ndarray:
    if not path.is_file():
        raise BadInput(f"C simulation wrote no {path.name}")
    rows = [list(map(float, line.split())) for line in path.read_text().splitlines()]
    arr = np.array(rows, dtype=np.float64).reshape(-1, n_cols)
    return arr


def _mantissas(values: np.ndarray, frac: int) -> np.ndarray:
    """C-sim values back to mantissas; off-grid values become NaN and never match."""
    scaled = np.ldexp(values, frac)  # exact: printed with 17 significant digits
    return np.where(scaled == np.round(scaled), scaled, np.nan)


def _compare_layers(path: Path, trace: Trace) -> list[dict]:
    """Per-layer mismatch counts from the testbench's trace file, in network order."""
    names, lines = trace.names[1:], path.read_text().splitlines() if path.is_file() else []
    if len(lines) != len(names) * len(trace.mantissas[0]):
        raise BadInput(f"C simulation trace has {len(lines)} lines, expected {len(names)} per sample")
    report = []
    for k, name in enumerate(names):
        rows = [line.split()[1:] for line in lines[k :: len(names)]]
        got = _mantissas(np.array(rows, dtype=np.float64), trace.fracs[k + 1])
        bad = np.argwhere(got != trace.mantissas[k + 1])
        entry = {"layer": name, "mismatches": len(bad)}
        if len(bad):
            entry["first"] = {"sample": int(bad[0][0]), "output": int(bad[0][1])}
        report.append(entry)
    return report


def csim_project(
    prj: Path, net: Network, x: np.ndarray, timeout: float = 900, trace_layers: bool = False
) -> CsimResult:
    """Compile and run the project's testbench on ``x``; compare outputs (and with
    ``trace_layers`` every layer's output, io_parallel) bit for bit."""
    prj = Path(prj)
    trace = write_testbench_data(net, x, prj / "tb")
    binary = "build/csim_trace" if trace_layers else "build/csim"
    build = run_tool(["make", "-s", binary], prj, prj / "report" / "csim_build.log", timeout)
    if build.returncode != 0:
        raise BadInput(f"C simulation did not compile; see {prj / 'report' / 'csim_build.log'}")
    sim = run_tool([f"./{binary}", "tb"], prj, prj / "report" / "csim_run.log", timeout)
    if sim.returncode not in (0, 1):
        raise BadInput(f"C simulation failed (exit {sim.returncode}); see {prj / 'report' / 'csim_run.log'}")
    got = _read_rows(prj / "tb" / "csim_outputs.txt", net.n_out)
    if len(got) != len(x):
        raise BadInput(f"C simulation produced {len(got)} rows for {len(x)} inputs")
    diff = np.argwhere(_mantissas(got, trace.fracs[-1]) != trace.mantissas[-1])
    first = None
    if len(diff):
        i, j = map(int, diff[0])
        first = {"sample": i, "output": j, "expected": float(trace.logits[i, j]), "got": float(got[i, j])}
    soft_err = soft_bad = tol = None
    if trace.softmax is not None:
        from fpga_mpq.hls.generate import SOFTMAX_TOLERANCE

        p = _read_rows(prj / "tb" / "csim_softmax.txt", net.n_out)
        err = np.abs(p - trace.softmax)
        soft_err, tol, soft_bad = float(err.max()), SOFTMAX_TOLERANCE, int((err > SOFTMAX_TOLERANCE).sum())
    layers = _compare_layers(prj / "tb" / "trace.txt", trace) if trace_layers else None
    result = CsimResult(len(x), int(got.size), len(diff), first, soft_err, tol, soft_bad, layers)
    (prj / "report" / "csim.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result
