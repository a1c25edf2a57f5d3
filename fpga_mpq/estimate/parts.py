"""The FPGA parts users size against: capacities from AMD's product tables.

``family`` decides the DSP slice (7-series DSP48E1 is 25x18, UltraScale(+) DSP48E2 is 27x18) and
the carry chain Yosys maps adders to (CARRY4 / CARRY8).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from fpga_mpq.errors import BadInput


@dataclass(frozen=True)
class Part:
    name: str
    family: str  # "7series" or "ultrascale+"
    lut: int
    ff: int
    dsp: int
    bram18: int
    uram: int

    @property
    def dsp_operands(self) -> tuple[int, int]:
        """Signed operand widths one DSP multiplier takes."""
        return (25, 18) if self.family == "7series" else (27, 18)

    @property
    def carry_bits(self) -> int:
        return 4 if self.family == "7series" else 8


PARTS = {
    p.name: p
    for p in (
        Part("xc7a100t", "7series", 63_400, 126_800, 240, 270, 0),
        Part("xc7z020", "7series", 53_200, 106_400, 220, 280, 0),
        Part("xczu9eg", "ultrascale+", 274_080, 548_160, 2_520, 1_824, 0),
        Part("xcu250", "ultrascale+", 1_728_000, 3_456_000, 12_288, 5_376, 1_280),
        Part("xcvu13p", "ultrascale+", 1_728_000, 3_456_000, 12_288, 5_376, 1_280),
    )
}


# What AMD appends to a device name: the package (letters and pin count; UltraScale names put a
# dash before it), the speed grade with an optional low-power L or LV, an optional temperature grade.
PART_SUFFIX = re.compile(r"-?[a-z]+\d+-\d(lv|l)?(-[a-z])?")


def find_part(name: str) -> Part:
    """Accept the base name or a full part number (``xcu250-figd2104-2L-e``, ``xc7z020clg400-1``)."""
    text = name.lower()
    if text in PARTS:
        return PARTS[text]
    for base, part in PARTS.items():
        if text.startswith(base) and PART_SUFFIX.fullmatch(text[len(base) :]):
            return part
    raise BadInput(
        f"unknown part {name!r}; known parts: {', '.join(PARTS)}, "
        "or one of them with its package and speed grade (e.g. xcu250-figd2104-2L-e, xc7z020clg400-1)"
    )


MIN_CLOCK_NS, MAX_CLOCK_NS = 0.1, 1e6  # 10 GHz .. 1 kHz: beyond either no part runs, and the arithmetic breaks


def check_clock(ns: float) -> None:
    """A clock period every stage can work with (the HLS project, the RTL pipeline, the estimate)."""
    if not (math.isfinite(ns) and MIN_CLOCK_NS <= ns <= MAX_CLOCK_NS):
        raise BadInput(f"clock period {ns} ns must be a number from {MIN_CLOCK_NS} to {MAX_CLOCK_NS:g} ns")
