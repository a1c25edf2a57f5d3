"""Read the tool's output folders into typed records: everything the report shows, before any HTML.

A folder is known by the JSON reports the commands write (:mod:`fpga_mpq.api`): ``search.json``
(search), ``estimate.json`` (estimate ``-o``), and ``report/*.json`` of a flow, an HLS project
(estimate, csim) or an RTL project (rtlsim, synth). A flow's HLS project is read from ``hls/report/``,
a dqmq deployment flow's projects from ``*/hls/report/``. Older outputs lack the accuracy intervals
and the selection rule; those fields are then None.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fpga_mpq.errors import BadInput

MAX_REPORT_BYTES = 64 << 20  # far above any report the tool writes
MAX_FIGURE = 1e15  # no count, cost or accuracy of a real design comes near it: a larger number is crafted
PROJECT_REPORTS = ("flow.json", "estimate.json", "csim.json", "rtlsim.json", "synth.json")
EXPECTED = (
    "search.json (search), estimate.json (estimate -o) or report/ with "
    + ", ".join(PROJECT_REPORTS)
    + " (flow, an HLS project, an RTL project)"
)


@dataclass(frozen=True)
class Point:
    """A design on a front: its cost in the search's metric and its test accuracy (0..1)."""

    label: str
    cost: float
    test_acc: float
    test_interval: tuple[float, float] | None


@dataclass(frozen=True)
class Front:
    """``role`` picks the colour: the searched method, the uniform reference or a peer method."""

    name: str
    role: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Design:
    """One row of the widths heat map: bits by group name (``input``, ``layers[0].weight``, ...)."""

    label: str
    widths: dict[str, int]


@dataclass(frozen=True)
class Search:
    source: str
    method: str
    cost_metric: str
    target: str
    selection_rule: str | None
    float_test: float
    float_test_interval: tuple[float, float] | None
    fronts: tuple[Front, ...]
    chosen: Point | None
    chosen_costs: dict[str, float]
    iso_ratio: float | None
    iso_beyond_uniform: bool  # the ratio is an upper bound: the chosen design beats every uniform one
    designs: tuple[Design, ...]
    interval_level: float | None  # of the accuracy intervals (0.95), when the search recorded them


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str
    lut: int
    ff: int
    dsp: int
    bram18: int
    latency_cycles: int


@dataclass(frozen=True)
class Estimate:
    source: str
    target: str  # "hls" or "rtl"
    part: str
    clock_ns: float
    reuse_factor: int
    strategy: str
    io: str
    layers: tuple[LayerCost, ...]
    total: LayerCost
    latency_ns: float
    utilization: dict[str, float]  # percent of the part, by resource


@dataclass(frozen=True)
class Check:
    """One verification's outcome: a pass / fail badge and the figures behind it."""

    kind: str  # "C simulation", "RTL simulation", "Synthesis"
    source: str
    passed: bool
    status: str
    figures: tuple[tuple[str, object], ...]
    cells: tuple[tuple[str, int], ...] = ()  # synthesis: Yosys cell counts by type


@dataclass(frozen=True)
class Flow:
    source: str
    accuracy_float: float
    accuracy_quant: float
    accuracy_hardware: float
    differing_from_brevitas: int
    design: Design


@dataclass(frozen=True)
class Level:
    """One network of a deployment flow (a quality level's, or the quality estimator's)."""

    name: str
    weight_bits: str
    act_bits: str
    total: dict[str, int]
    accuracy: float
    mismatches: int
    outputs: int


@dataclass(frozen=True)
class Deployment:
    source: str
    levels: tuple[Level, ...]
    estimator: Level
    accuracy_declared: float
    accuracy_estimated: float


@dataclass(frozen=True)
class Folder:
    """What one output folder holds; ``name`` is the path as the user gave it."""

    name: str
    search: Search | None
    flow: Flow | None
    deployment: Deployment | None
    estimates: tuple[Estimate, ...]
    checks: tuple[Check, ...]

    def files(self) -> list[Path]:
        """Every report file read."""
        records = [self.search, self.flow, self.deployment, *self.estimates, *self.checks]
        return sorted({Path(self.name) / r.source for r in records if r is not None})

    def found(self) -> list[str]:
        kinds = [k for k in ("search", "flow", "deployment") if getattr(self, k) is not None]
        kinds += [f"{e.target} estimate" for e in self.estimates]
        return kinds + [c.kind for c in self.checks]


def collect(dirs: list[Path]) -> list[Folder]:
    """Every folder read (a folder given twice is read once); a bad one is a ``BadInput`` naming it."""
    seen: set[Path] = set()
    folders = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise BadInput(f"{d} {'is not a folder' if d.exists() else 'does not exist'}: expected {EXPECTED}")
        if d.resolve() not in seen:
            seen.add(d.resolve())
            folders.append(read_folder(d))
    return folders


def read_folder(d: Path) -> Folder:
    name = str(d)
    search = _read(d, "search.json", "search", _search) if (d / "search.json").is_file() else None
    estimates, checks = [], []
    if (d / "estimate.json").is_file():
        estimates.append(_read(d, "estimate.json", "estimate", _estimate))
    flow = deployment = None
    projects = [d]
    if (d / "report" / "flow.json").is_file():
        data = _load(d / "report" / "flow.json")
        if "levels" in data:
            deployment = _parse(d, "report/flow.json", "deployment flow", data, _deployment)
            projects += sorted(p.parent for p in d.glob("*/hls/report"))
        else:
            flow = _parse(d, "report/flow.json", "flow", data, _flow)
            checks.append(_parse(d, "report/flow.json", "flow", data, lambda rel, f: _csim(rel, f["csim"], d / "hls")))
            projects.append(d / "hls")
    for prj in projects:
        readers = (
            ("estimate", _estimate),
            ("csim", lambda rel, c, prj=prj: _csim(rel, c, prj)),
            ("rtlsim", _rtlsim),
            ("synth", _synth),
        )
        for kind, parse in readers:
            rel = prj.relative_to(d) / "report" / f"{kind}.json"
            if (d / rel).is_file():
                record = _read(d, str(rel), kind, parse)
                (estimates if isinstance(record, Estimate) else checks).append(record)
    folder = Folder(name, search, flow, deployment, tuple(estimates), tuple(_unique(checks)))
    if not folder.found():
        raise BadInput(f"{d} holds no report of fpga_mpq: expected {EXPECTED}")
    return folder


def _unique(checks: list[Check]) -> list[Check]:
    """A flow's C simulation is also its project's ``csim.json`` until csim runs again: shown once."""
    out: list[Check] = []
    for c in checks:
        if not any(o.kind == c.kind and o.figures == c.figures and o.passed == c.passed for o in out):
            out.append(c)
    return out


def _number(text: str) -> float | int:
    """A JSON number the report can draw: finite and within :data:`MAX_FIGURE`."""
    value = float(text) if any(c in text for c in ".eE") else int(text)
    if not abs(value) <= MAX_FIGURE:
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is beyond any figure of a report")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a figure of a report")


def _load(path: Path) -> dict:
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise ValueError(f"{path.stat().st_size:,} bytes, more than any report of fpga_mpq")
        data = json.loads(path.read_text(), parse_float=_number, parse_int=_number, parse_constant=_no_constant)
    except RecursionError:
        raise BadInput(f"{path} is not a report of fpga_mpq: its JSON is nested too deeply") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BadInput(f"{path} is not a readable JSON report ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not a report of fpga_mpq: a JSON object was expected")
    return data


def _read(d: Path, rel: str, kind: str, parse: Callable[[str, dict], object]):
    return _parse(d, rel, kind, _load(d / rel), parse)


def _parse(d: Path, rel: str, kind: str, data: dict, parse: Callable[[str, dict], object]):
    """The record, or one ``BadInput`` naming the file when a key the report needs is missing or wrong."""
    try:
        return parse(rel, data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError, RecursionError) as e:
        raise BadInput(f"{d / rel} is not a {kind} report of fpga_mpq ({type(e).__name__}: {str(e)[:200]})") from None


def _interval(value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    lo, hi = value
    return float(lo), float(hi)


def _point(d: dict, metric: str) -> Point:
    return Point(
        str(d["label"]), float(d["costs"][metric]), float(d["test_acc"]), _interval(d.get("test_acc_interval"))
    )


def _target(t: dict) -> str:
    if t.get("max_drop") is not None:
        return f"at most {t['max_drop']:g} accuracy points below the float model"
    return f"{t['metric']} at most {t['budget']:g}"


def _search(rel: str, s: dict) -> Search:
    metric, method = str(s["cost_metric"]), str(s["method"])
    fronts = [Front(f"{method} front", "method", tuple(_point(p, metric) for p in s["front"]))]
    uniform = Front("uniform front", "uniform", tuple(_point(p, metric) for p in s["uniform_front"]))
    if uniform.points != fronts[0].points:  # a uniform search's front is its own reference
        fronts.append(uniform)
    if s.get("peer_front"):
        peer = s["peer_front"]
        fronts.append(Front(f"{peer[0]['method']} front", "peer", tuple(_point(p, metric) for p in peer)))
    chosen = s["chosen"]
    acc = s["accuracy_float"]
    return Search(
        source=rel,
        method=method,
        cost_metric=metric,
        target=_target(s["target"]),
        selection_rule=s.get("selection_rule"),
        float_test=float(acc["test"]),
        float_test_interval=_interval(acc.get("test_interval")),
        fronts=tuple(fronts),
        chosen=None if chosen is None else _point(chosen, metric),
        chosen_costs={} if chosen is None else {k: float(v) for k, v in chosen["costs"].items()},
        iso_ratio=s.get("iso_accuracy_cost_ratio"),
        iso_beyond_uniform=s.get("iso_accuracy_beyond_uniform") is True,
        designs=_designs(s, method),
        interval_level=next((float(p["interval_level"]) for p in s["front"] if p.get("interval_level")), None),
    )


def _designs(s: dict, method: str) -> tuple[Design, ...]:
    """The chosen design, or for dqmq one design per quality level."""
    if s.get("levels"):
        return tuple(
            Design(f"{method} level {lv['level']} ({lv['name']})", _widths(lv["widths"])) for lv in s["levels"]
        )
    if s["chosen"] is None or s["chosen"]["widths"] is None:
        return ()
    return (Design(f"{method} chosen", _widths(s["chosen"]["widths"])),)


def _widths(w: dict) -> dict[str, int]:
    return {str(k): int(v) for k, v in w.items()}


def _cost(d: dict, name: str, kind: str) -> LayerCost:
    return LayerCost(name, kind, int(d["lut"]), int(d["ff"]), int(d["dsp"]), int(d["bram18"]), int(d["latency_cycles"]))


def _estimate(rel: str, e: dict) -> Estimate:
    return Estimate(
        source=rel,
        target=str(e["target"]),
        part=str(e["part"]),
        clock_ns=float(e["clock_ns"]),
        reuse_factor=int(e["reuse_factor"]),
        strategy=str(e["strategy"]),
        io=str(e["io"]),
        layers=tuple(_cost(la, str(la["name"]), str(la["kind"])) for la in e["layers"]),
        total=_cost(e["total"], "total", ""),
        latency_ns=float(e["total"]["latency_ns"]),
        utilization={str(k): float(v) for k, v in e["utilization_percent"].items()},
    )


def _count(record: dict, key: str) -> int:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} is {str(value)[:40]}, not a count")
    return value


def _csim(rel: str, c: dict, project: Path) -> Check:
    """``csim.json`` (with a status) or a flow's ``csim`` summary (which only exists when it passed).

    The verdict comes from the counts, never from the label; a pass is shown only while ``project``
    is what was simulated (the record's digest is the project's now)."""
    from fpga_mpq.sim.csim import record_is_current

    status = str(c.get("status", "passed"))
    if status in ("build_failed", "run_failed"):
        figures = (("exit code", c["exit"]),) if "exit" in c else ()
        return Check("C simulation", rel, False, status.replace("_", " "), figures + (("log", str(c["log"])),))
    if status not in ("passed", "mismatch"):
        raise ValueError(f"status {status[:40]!r} is none that csim writes")
    samples, outputs, mismatches = _count(c, "samples"), _count(c, "outputs"), _count(c, "mismatches")
    soft = _count(c, "softmax_out_of_tolerance") if c.get("softmax_out_of_tolerance") is not None else 0
    figures: list[tuple[str, object]] = [("samples", samples), ("outputs", outputs), ("mismatches", mismatches)]
    if c.get("first_mismatch"):
        first = c["first_mismatch"]
        figures.append(("first mismatch", f"sample {int(first['sample'])}, output {int(first['output'])}"))
    if c.get("softmax_tolerance") is not None:
        figures.append(("softmax outputs out of tolerance", soft))
    if c.get("layers"):
        first_layer = next((str(la["layer"]) for la in c["layers"] if la["mismatches"]), None)
        figures.append(("first differing layer", first_layer or "none"))
    passed = samples > 0 and outputs > 0 and mismatches == 0 and soft == 0
    if passed != (status == "passed"):
        return Check(
            "C simulation", rel, False, f"inconsistent: labelled {status}, counts say otherwise", tuple(figures)
        )
    if passed and not record_is_current(project, c):
        return Check("C simulation", rel, False, "not current: the project changed since this run", tuple(figures))
    return Check("C simulation", rel, passed, status, tuple(figures))


def _rtlsim(rel: str, r: dict) -> Check:
    figures = (
        ("samples", r["samples"]),
        ("outputs", r["outputs"]),
        ("mismatches", r["mismatches"]),
        ("latency (cycles)", r["latency_cycles"]),
        ("II", r["ii"]),
        ("register bits", r["register_bits"]),
        ("compared", f"{r['compared_layer']} ({r['compared_tensor']})"),
    )
    passed = _count(r, "outputs") > 0 and _count(r, "mismatches") == 0
    return Check("RTL simulation", rel, passed, "passed" if passed else "mismatch", figures)


def _synth(rel: str, s: dict) -> Check:
    """A synthesis report is only written when Yosys finished: its badge is the figures' presence."""
    keys = (("LUT", "lut"), ("FF", "ff"), ("CARRY", "carry"), ("DSP", "dsp"), ("BRAM18", "bram18"))
    figures = tuple((label, s[k]) for label, k in keys) + (("LUTRAM", s["lutram"]), ("part", s["part"]))
    cells = tuple(sorted(((str(k), int(v)) for k, v in s["cells"].items()), key=lambda kv: -kv[1]))
    return Check("Synthesis", rel, True, "synthesized", figures, cells)


def _flow(rel: str, f: dict) -> Flow:
    from fpga_mpq.models.spec import spec_from_dict
    from fpga_mpq.mpq.widths import widths_of  # imports torch: only when a flow is reported

    try:
        widths = widths_of(spec_from_dict(f["spec"])).by_name()
    except BadInput as e:
        raise ValueError(e) from None
    return Flow(
        source=rel,
        accuracy_float=float(f["accuracy_float"]),
        accuracy_quant=float(f["accuracy_quant"]),
        accuracy_hardware=float(f["accuracy_hardware"]),
        differing_from_brevitas=int(f["outputs_differing_from_brevitas"]),
        design=Design("flow spec", widths),
    )


def _level(r: dict, name: str) -> Level:
    return Level(
        name=name,
        weight_bits=str(r["weight_bits"]),
        act_bits=str(r["act_bits"]),
        total={k: int(r["total"][k]) for k in ("lut", "ff", "dsp", "bram18")},
        accuracy=float(r["accuracy"]),
        mismatches=int(r["mismatches"]),
        outputs=int(r["outputs"]),
    )


def _deployment(rel: str, f: dict) -> Deployment:
    return Deployment(
        source=rel,
        levels=tuple(_level(r, f"level {r['level']} ({r['level_name']})") for r in f["levels"]),
        estimator=_level(f["estimator"], "quality estimator"),
        accuracy_declared=float(f["accuracy_hardware_level_declared"]),
        accuracy_estimated=float(f["accuracy_hardware_level_estimated"]),
    )
