"""C simulation: build the generated project with g++ and compare every output with the golden model."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.golden import Trace, host_input, run
from fpga_mpq.ir.network import Network
from fpga_mpq.outputs import alive, inner_folder, replace_file
from fpga_mpq.sim.make_env import build_vars_key, make_env
from fpga_mpq.sim.pch import precompiled_header
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
    t, q = net.input.out, net.input.host_quant
    rng = np.random.default_rng(seed)
    # the input's real step: a float-scale quantizer's scale (the hardware takes its integers), else the LSB
    lsb = float(q.scale.reshape(-1)[0]) if q is not None and not q.pow2 else 2.0**-t.frac
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


def _compare_layers(path: Path, trace: Trace, layer_of: dict[str, str]) -> list[dict]:
    """Per-tensor mismatch counts from the testbench's trace file, in topological order."""
    names = list(trace.mantissas)[1:]  # every layer's output; the input is the testbench's own
    n = len(trace.mantissas[names[0]])
    rows: dict[str, list[list[str]]] = {name: [] for name in names}
    for line in path.read_text().splitlines() if path.is_file() else []:
        name, *values = line.split()
        if name not in rows:
            raise BadInput(f"C simulation trace names tensor {name}, which the network does not have")
        rows[name].append(values)
    report = []
    for name in names:
        if len(rows[name]) != n:
            raise BadInput(f"C simulation trace has {len(rows[name])} rows of tensor {name}, expected {n}")
        expected = trace.mantissas[name].reshape(n, -1)
        got = _mantissas(np.array(rows[name], dtype=np.float64), trace.fracs[name])
        bad = np.argwhere(got != expected)
        entry = {"tensor": name, "layer": layer_of[name], "mismatches": len(bad)}
        if len(bad):
            entry["first"] = {"sample": int(bad[0][0]), "output": int(bad[0][1])}
        report.append(entry)
    return report


def csim_project(
    prj: Path, net: Network, x: np.ndarray, digest: str, timeout: float = 900, trace_layers: bool = False
) -> CsimResult:
    """Compile the project's testbench as it is on disk now and run it on ``x``; compare outputs
    (and with ``trace_layers`` every layer's output, io_parallel) bit for bit.

    ``digest`` is :func:`project_digest` taken before ``net`` was read from the project: the result
    is recorded only if the project still has it when the simulation ends, so a project replaced or
    edited meanwhile never inherits another's verdict. Each run works in its own temporary folder,
    so runs on one project may overlap; the project's ``tb/`` keeps the samples it shipped with.
    """
    prj = Path(prj)
    report = inner_folder(prj, "report")
    _drop_stale_record(report / "csim.json", digest)
    binary = build_testbench(prj, trace_layers, timeout, digest).resolve()
    with tempfile.TemporaryDirectory(prefix="fpga_mpq_csim_") as tmp:
        run_dir = Path(tmp)
        trace = write_testbench_data(net, x, run_dir)
        names = {binary: f"build/{binary.name}", run_dir: "SAMPLES"}
        sim = run_tool([str(binary), str(run_dir)], prj, run_dir / "run.log", timeout, names=names)
        _check_unchanged(prj, digest)
        _publish(run_dir / "run.log", report / "csim_run.log")
        if sim.returncode not in (0, 1):
            _publish_status(
                report, {"status": "run_failed", "exit": sim.returncode, "log": "report/csim_run.log"}, digest
            )
            raise BadInput(f"C simulation failed (exit {sim.returncode}); see {report / 'csim_run.log'}")
        got = _read_rows(run_dir / "csim_outputs.txt", net.n_out)
        if len(got) != len(x):
            raise BadInput(f"C simulation produced {len(got)} rows for {len(x)} inputs")
        soft = _read_rows(run_dir / "csim_softmax.txt", net.n_out) if trace.softmax is not None else None
        layer_of = {la.output: la.name for la in net.exact_layers}
        layers = _compare_layers(run_dir / "trace.txt", trace, layer_of) if trace_layers else None
    diff = np.argwhere(_mantissas(got, trace.fracs[trace.last]) != trace.result)
    first = None
    if len(diff):
        i, j = map(int, diff[0])
        first = {"sample": i, "output": j, "expected": float(trace.logits[i, j]), "got": float(got[i, j])}
    soft_err = soft_bad = tol = None
    if soft is not None:
        from fpga_mpq.hls.generate import SOFTMAX_TOLERANCE

        err = np.abs(soft - trace.softmax)
        soft_err, tol, soft_bad = float(err.max()), SOFTMAX_TOLERANCE, int((err > SOFTMAX_TOLERANCE).sum())
    result = CsimResult(len(x), int(got.size), len(diff), first, soft_err, tol, soft_bad, layers)
    _publish_status(report, {"status": "passed" if result.ok else "mismatch", **asdict(result)}, digest)
    return result


def _own_files(prj: Path, folder: str) -> list[Path]:
    """Every file under ``prj/folder``, sorted, and every symbolic link in it (which :func:`_digest`
    refuses: os.walk would not descend into a linked folder, and its target could change with no
    byte of the project changing)."""
    files = []
    for root, dirs, names in os.walk(prj / folder):
        dirs.sort()
        files += [Path(root) / name for name in sorted(names)]
        files += [Path(root) / name for name in dirs if (Path(root) / name).is_symlink()]
    return files


def _digest(prj: Path, files: list[Path], salt: bytes) -> str:
    h = hashlib.sha256(salt + build_vars_key())
    for p in files:
        if p.is_symlink():
            raise BadInput(
                f"project {prj}: {p.relative_to(prj)} is a symbolic link; C simulation reads only the project's "
                "own files: copy its target in place or generate the project again"
            )
        h.update(f"\0{p.relative_to(prj)}\0".encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _source_digest(prj: Path, variant: str) -> str:
    """A hash of everything the testbench build reads (and the build variables): a changed, added or
    deleted header changes it."""
    return _digest(prj, [prj / "Makefile", prj / "tb" / "tb.cpp", *_own_files(prj, "firmware")], variant.encode())


def _check_layout(prj: Path) -> None:
    """The files and folders a C simulation reads and writes: there, of their kind, and no links."""
    needs = (("Makefile", "file"), ("tb/tb.cpp", "file"), ("tb", "folder"), ("firmware", "folder"))
    for needed, kind in (*needs, ("build", "folder"), ("report", "folder")):
        path = prj / needed
        if path.is_symlink():
            raise BadInput(
                f"project {prj}: {needed} is a symbolic link; fpga_mpq reads and writes only inside the project"
            )
        if (needed, kind) in needs and not path.exists():
            raise BadInput(f"project {prj} is incomplete: {needed} is missing; generate it again")
        if path.exists() and path.is_dir() != (kind == "folder"):
            raise BadInput(f"project {prj} is damaged: {needed} is not a {kind}; generate it again")


def project_digest(prj: Path) -> str:
    """A hash of everything a verification of the project depends on: the build's sources and
    variables, the project's own model and configuration (every file at its top)."""
    prj = Path(prj)
    _check_layout(prj)
    top = sorted(p for p in prj.iterdir() if p.is_symlink() or p.is_file())
    return _digest(prj, [*top, prj / "tb" / "tb.cpp", *_own_files(prj, "firmware")], b"project")


def _digest_now(prj: Path) -> str | None:
    """:func:`project_digest`, or None where the project can no longer be read as one."""
    try:
        return project_digest(prj)
    except (OSError, BadInput):
        return None


def record_is_current(prj: Path, record: dict) -> bool:
    """True when ``record`` (a ``csim.json``) was made from the project as it is on disk now."""
    now = _digest_now(prj)
    return now is not None and record.get("project_digest") == now


def _drop_stale_record(path: Path, digest: str) -> None:
    """A ``csim.json`` made from other sources is removed before anything can fail (removing needs no
    disk space): a failed run never leaves another project state's pass behind."""
    try:
        stale = json.loads(path.read_text()).get("project_digest") != digest
    except (OSError, ValueError, AttributeError):
        stale = path.exists()
    if stale:
        path.unlink(missing_ok=True)


def _check_unchanged(prj: Path, digest: str) -> None:
    if _digest_now(prj) != digest:
        raise BadInput(
            f"project {prj} changed while it was simulated (generated again or edited): "
            "no result was recorded; run csim again"
        )


_PARTIAL = re.compile(r"\.(?:csim|trace)-[0-9a-f]{16}\.(\d+)\.(?:partial|log)")


def _sweep_partials(build: Path) -> None:
    """Remove the half-built binaries and logs of builds whose process no longer runs (SIGKILL)."""
    for p in build.iterdir():
        m = _PARTIAL.fullmatch(p.name)
        if m and not alive(int(m.group(1))):
            p.unlink(missing_ok=True)


def build_testbench(prj: Path, trace_layers: bool = False, timeout: float = 900, digest: str | None = None) -> Path:
    """The testbench binary of the sources on disk now: reused only when every source is unchanged.

    Binaries are named by a hash of all sources and built under a private name, then renamed,
    so a concurrent run never sees half of one. A failed build leaves its log in ``report/`` and
    replaces ``report/csim.json`` by the failure.
    """
    prj = Path(prj)
    _check_layout(prj)
    variant = "trace" if trace_layers else "csim"
    build = prj / "build"
    binary = build / f"{variant}-{_source_digest(prj, variant)}"
    if binary.is_file():
        return binary
    build.mkdir(exist_ok=True)
    _sweep_partials(build)
    partial = build / f".{binary.name}.{os.getpid()}.partial"
    cmd = ["make", "-s", "trace" if trace_layers else "build", f"BIN={partial.relative_to(prj)}"]
    header = precompiled_header(prj, variant, timeout)
    if header is not None:
        cmd.append(f"PCH=-include {header}")
    log = build / f".{binary.name}.{os.getpid()}.log"
    try:
        names = {partial.relative_to(prj): f"build/{binary.name}"}
        proc = run_tool(cmd, prj, log, timeout, env=make_env(), names=names)
        if digest is not None:
            _check_unchanged(prj, digest)
        _publish(log, prj / "report" / "csim_build.log")
        if proc.returncode != 0 or not partial.is_file():
            status = {"status": "build_failed", "log": "report/csim_build.log"}
            _publish_status(prj / "report", status, digest)
            raise BadInput(f"C simulation did not compile; see {prj / 'report' / 'csim_build.log'}")
        os.replace(partial, binary)
    finally:
        for p in (partial, log):
            p.unlink(missing_ok=True)
    for old in build.glob(f"{variant}-*"):
        if old != binary:
            old.unlink(missing_ok=True)
    return binary


def _publish(src: Path, dst: Path) -> None:
    """Copy a log into the project's report folder in one rename."""
    replace_file(dst, lambda p: shutil.copyfile(src, p))


def _publish_status(report: Path, status: dict, digest: str | None) -> None:
    """``report/csim.json``: the last run's outcome, never an earlier run's pass, with the digest of
    the project it was made from (a reader shows it only while the project still has it)."""
    text = json.dumps({**status, "project_digest": digest}, indent=2) + "\n"
    replace_file(report / "csim.json", lambda p: p.write_text(text))
