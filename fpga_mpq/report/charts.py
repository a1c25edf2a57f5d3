"""Chart geometry in pixels, computed here so the template only draws (inline SVG, no script)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fpga_mpq.report.collect import Design, Estimate, Point, Search

COLOURS = {"method": "#1f77b4", "uniform": "#ff7f0e", "peer": "#2ca02c"}
# viridis, from few bits (light) to many (dark)
RAMP = ("#fde725", "#5ec962", "#21918c", "#3b528b", "#440154")
WIDTH, HEIGHT = 560, 380
LEFT, RIGHT, TOP, BOTTOM = 56, 548, 12, 328  # the plot's box


@dataclass(frozen=True)
class Tick:
    at: float  # pixel
    label: str


@dataclass(frozen=True)
class Mark:
    """A design in pixels; ``lo`` / ``hi`` are its interval's ends (None when the report has none)."""

    x: float
    y: float
    lo: float | None
    hi: float | None
    title: str


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    path: str  # the front as a step line (SVG path data)
    marks: tuple[Mark, ...]


@dataclass(frozen=True)
class ParetoChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    x_label: str
    series: tuple[Series, ...]
    chosen: Mark | None
    float_y: float  # the float model's test accuracy, a dashed line
    float_label: str
    note: str  # e.g. designs at cost 0, drawn at the left edge


@dataclass(frozen=True)
class Cell:
    bits: int | None
    fill: str
    ink: str


@dataclass(frozen=True)
class HeatMap:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Cell, ...]], ...]
    legend: tuple[Cell, ...]


@dataclass(frozen=True)
class Bar:
    value: int
    share: float  # of the column's largest value, 0..1


@dataclass(frozen=True)
class BarTable:
    """Per-layer figures of an estimate, each with a bar scaled to its column."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, str, tuple[Bar, ...]], ...]  # layer name, kind, one bar per column
    total: tuple[int, ...]
    share_of_part: tuple[str, ...]  # percent of the part (the latency column: nanoseconds)


def _si(v: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def _log_ticks(a: float, b: float) -> list[float]:
    """Round values between 10**a and 10**b: 1-2-5 steps over a few decades, more when the range is short."""
    for steps in ((1,), (1, 2, 5), (1, 2, 3, 5, 7), tuple(range(1, 10))):
        ticks = [
            m * 10.0**k
            for k in range(math.floor(a), math.ceil(b) + 1)
            for m in steps
            if a <= math.log10(m * 10.0**k) <= b
        ]
        if len(ticks) >= 3:
            return ticks
    return ticks


def _linear_ticks(lo: float, hi: float) -> tuple[list[float], int]:
    """About six round values between lo and hi, and the decimals their labels need."""
    raw = (hi - lo) / 6
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step)
    ticks = [k * step for k in range(first, math.floor(hi / step) + 1)]
    return ticks, max(0, -math.floor(math.log10(step)))


def _interval_text(iv: tuple[float, float] | None) -> str:
    return "" if iv is None else f" [{100 * iv[0]:.2f}, {100 * iv[1]:.2f}]"


def pareto_chart(s: Search) -> ParetoChart:
    """Test accuracy against cost (log scale) for every front of a search, intervals as error bars."""
    points = [p for f in s.fronts for p in f.points] + ([s.chosen] if s.chosen else [])
    positive = [p.cost for p in points if p.cost > 0] or [1.0]
    lo, hi = min(positive), max(positive)
    if lo == hi:
        lo, hi = lo / 2, hi * 2
    pad = 0.05 * (math.log10(hi) - math.log10(lo))
    a, b = math.log10(lo) - pad, math.log10(hi) + pad

    accs = [100 * s.float_test] + [100 * v for p in points for v in (p.test_acc, *(p.test_interval or ()))]
    y_lo, y_hi = min(accs), max(accs)
    y_pad = max(0.5, 0.06 * (y_hi - y_lo))
    y_lo, y_hi = max(0.0, y_lo - y_pad), min(100.0, y_hi + y_pad)

    def x_of(cost: float) -> float:
        return LEFT + (max(math.log10(cost) if cost > 0 else a, a) - a) / (b - a) * (RIGHT - LEFT)

    def y_of(acc: float) -> float:
        return BOTTOM - (100 * acc - y_lo) / (y_hi - y_lo) * (BOTTOM - TOP)

    def mark(p: Point) -> Mark:
        iv = p.test_interval
        title = f"{p.label}: {p.cost:,.0f} {s.cost_metric}, test {100 * p.test_acc:.2f} %{_interval_text(iv)}"
        lo, hi = (None, None) if iv is None else (y_of(iv[0]), y_of(iv[1]))
        return Mark(x_of(p.cost), y_of(p.test_acc), lo, hi, title)

    series = []
    for f in s.fronts:
        marks = tuple(mark(p) for p in sorted(f.points, key=lambda p: p.cost))
        path = "".join(f"M{m.x:.1f} {m.y:.1f}" if i == 0 else f"H{m.x:.1f}V{m.y:.1f}" for i, m in enumerate(marks))
        series.append(Series(f.name, COLOURS[f.role], path, marks))
    y_ticks, decimals = _linear_ticks(y_lo, y_hi)
    at_zero = sum(p.cost <= 0 for p in points)
    return ParetoChart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=RIGHT,
        top=TOP,
        bottom=BOTTOM,
        x_ticks=tuple(Tick(x_of(v), _si(v)) for v in _log_ticks(a, b)),
        y_ticks=tuple(Tick(y_of(v / 100), f"{v:.{decimals}f}") for v in y_ticks),
        x_label=f"{s.cost_metric} (log scale)",
        series=tuple(series),
        chosen=mark(s.chosen) if s.chosen else None,
        float_y=y_of(s.float_test),
        float_label=f"float {100 * s.float_test:.2f} %",
        note=f"{at_zero} design(s) at cost 0 drawn at the left edge" if at_zero else "",
    )


def _colour(t: float) -> str:
    """The ramp's colour at ``t`` in 0..1, interpolated between its stops."""
    pos = t * (len(RAMP) - 1)
    k = min(int(pos), len(RAMP) - 2)
    c0, c1 = (tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in RAMP[k : k + 2])
    rgb = [round(u + (pos - k) * (v - u)) for u, v in zip(c0, c1, strict=True)]
    return "#" + "".join(f"{v:02x}" for v in rgb)


def _ink(fill: str) -> str:
    r, g, b = (int(fill[i : i + 2], 16) for i in (1, 3, 5))
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 140 else "#000000"


def heat_map(designs: list[tuple[str, Design]]) -> HeatMap | None:
    """Rows = labelled designs, columns = every group seen (first-seen order), colour by bits."""
    if not designs:
        return None
    columns = list(dict.fromkeys(g for _, d in designs for g in d.widths))
    values = sorted({b for _, d in designs for b in d.widths.values()})
    span = max(1, values[-1] - values[0])

    def cell(bits: int | None) -> Cell:
        if bits is None:
            return Cell(None, "#f2f2f2", "#000000")
        fill = _colour((bits - values[0]) / span)
        return Cell(bits, fill, _ink(fill))

    rows = tuple((label, tuple(cell(d.widths.get(g)) for g in columns)) for label, d in designs)
    return HeatMap(tuple(columns), rows, tuple(cell(b) for b in values))


def bar_table(e: Estimate) -> BarTable:
    keys = ("lut", "ff", "dsp", "bram18", "latency_cycles")
    most = {k: max((getattr(la, k) for la in e.layers), default=0) for k in keys}

    def bar(value: int, k: str) -> Bar:
        return Bar(value, value / most[k] if most[k] else 0.0)

    share = tuple(f"{e.utilization[k]:.2f} %" if k in e.utilization else "" for k in keys[:-1])
    return BarTable(
        columns=("LUT", "FF", "DSP", "BRAM18", "latency (cycles)"),
        rows=tuple((la.name, la.kind, tuple(bar(getattr(la, k), k) for k in keys)) for la in e.layers),
        total=tuple(getattr(e.total, k) for k in keys),
        share_of_part=share + (f"{e.latency_ns:g} ns",),
    )
