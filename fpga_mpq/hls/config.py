"""What a user chooses for the generated HLS project, checked when it is made.

Its own module, light to import: the CLI builds its options' defaults and help from it before any
heavy library loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fpga_mpq.errors import BadInput
from fpga_mpq.estimate.parts import check_clock, find_part

if TYPE_CHECKING:
    from fpga_mpq.ir.network import Network

PROJECT_META = "fpga_mpq.json"  # a generated project's configuration and input type
PROJECT_MODEL = "model.onnx"  # the project's own copy of the model it was generated from
BACKENDS = {"vivado": ("vivado_hls", "Vivado HLS"), "vitis": ("vitis_hls", "Vitis HLS")}
IO_TYPES = {"parallel": "io_parallel", "stream": "io_stream"}
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # ASCII only, unlike str.isidentifier
MAX_NAME = 64  # the top also names files and the vendor tool's Verilog module
# Names the generated C++ sees from the C/C++ headers it includes (macros are all capitals, refused as a rule).
C_LIBRARY_NAMES = frozenset(
    """
    abs assert ceil cerr cin clog cos cout div erf exit exp fabs floor fmax fmin free getline int8_t int16_t
    int32_t int64_t log log2 malloc max memcpy memset min pow printf putchar puts round sin size_t sqrt stderr
    stdin stdout string tan uint8_t uint16_t uint32_t uint64_t vector
    """.split()
)
RESERVED_BY_CPP = re.compile(r"_[A-Z_]|.*__")  # identifiers C++ keeps for the implementation
# What templates/hls defines at file scope or includes by name: a top function of one of these clashes.
GENERATED_NAME = re.compile(
    r"x|y|run|run_top|run_logits|read_row|to_stream|from_stream|mpq|nnet|hls|std|ap_\w*|N_INPUT|N_OUTPUT|config\d*"
    r"|config\d+_(mult|pad)|softmax_config|[wbtv]\d+|layer\d+_(out|pad)"
    r"|(input|result|logits|index|accum|bias\d*|weight\d*|layer\d+|threshold|exp_table|inv_table|inp_norm|inv_inp)"
    r"(_pack)?_t"
)
# The top is a C++ function: C++20 keywords and alternative tokens, and C's keywords (restrict, _Bool ...).
CPP_KEYWORDS = frozenset(
    """
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t char32_t class
    compl concept const consteval constexpr constinit const_cast continue co_await co_return co_yield decltype
    default delete do double dynamic_cast else enum explicit export extern false float for friend goto if inline
    int long mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public register
    reinterpret_cast requires return short signed sizeof static static_assert static_cast struct switch template
    this thread_local throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t
    while xor xor_eq restrict _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn
    _Static_assert _Thread_local
    """.split()
)


@dataclass(frozen=True)
class HlsConfig:
    """What a user chooses for the generated project; resolved and checked once."""

    backend: str = "vitis"
    part: str = "xcu250-figd2104-2L-e"
    clock_ns: float = 5.0
    reuse_factor: int = 1
    io: str | None = None  # None: io_stream for a network with convolutions or pools, else io_parallel
    top: str = "mpq_top"

    def __post_init__(self) -> None:
        """Every option on its own, before any work starts; :meth:`check` adds what needs the network."""
        if self.backend not in BACKENDS:
            raise BadInput(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.io is not None and self.io not in IO_TYPES:
            raise BadInput(f"io {self.io!r} is not supported (supported: {', '.join(IO_TYPES)})")
        find_part(self.part)
        check_clock(self.clock_ns)
        if not IDENTIFIER.fullmatch(self.top) or len(self.top) > MAX_NAME:
            raise BadInput(
                f"top function name {self.top!r} is not a C identifier of at most {MAX_NAME} characters "
                "([A-Za-z_][A-Za-z0-9_]*)"
            )
        if self.top.isupper() or self.top in C_LIBRARY_NAMES:
            raise BadInput(f"top function name {self.top!r} clashes with a C library name or macro (all capitals)")
        if self.top in CPP_KEYWORDS or self.top == "main" or RESERVED_BY_CPP.match(self.top):
            raise BadInput(f"top function name {self.top!r} is reserved in C++ (a keyword, main, or _X / __x)")
        if GENERATED_NAME.fullmatch(self.top):
            raise BadInput(f"top function name {self.top!r} is a name the generated C++ already defines")
        if isinstance(self.reuse_factor, bool) or not isinstance(self.reuse_factor, int) or self.reuse_factor < 1:
            raise BadInput(f"reuse factor {self.reuse_factor!r} must be a positive integer")

    def check(self, net: Network) -> None:
        """The options that depend on the network: the reuse factor must divide every layer."""
        from fpga_mpq.ir.network import check_reuse_factor  # here: the IR loads onnx

        check_reuse_factor(net, self.reuse_factor)

    def resolved(self, net: Network) -> HlsConfig:
        """This configuration for ``net``, checked, with ``io`` chosen when the user left it out:
        io_stream for a CNN (line buffers instead of fully unrolled windows), io_parallel otherwise."""
        from fpga_mpq.ir.network import Conv, Pool

        cfg = self
        if self.io is None:
            cfg = replace(self, io="stream" if any(isinstance(la, Conv | Pool) for la in net.layers) else "parallel")
        cfg.check(net)
        return cfg
