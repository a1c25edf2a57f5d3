"""What an estimate is: resources and timing per layer, for one design on one part."""

from __future__ import annotations

from dataclasses import dataclass, field

from fpga_mpq.errors import BadInput
from fpga_mpq.estimate.parts import Part, check_clock

STRATEGIES = ("latency", "resource")


@dataclass(frozen=True)
class Cost:
    lut: float = 0.0
    ff: float = 0.0
    dsp: int = 0
    bram18: int = 0
    uram: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.lut + other.lut,
            self.ff + other.ff,
            self.dsp + other.dsp,
            self.bram18 + other.bram18,
            self.uram + other.uram,
        )


@dataclass(frozen=True)
class EstimateConfig:
    """The implementation choices an estimate depends on."""

    part: Part
    clock_ns: float = 5.0
    reuse_factor: int = 1
    strategy: str = "latency"
    io: str = "parallel"

    def __post_init__(self) -> None:
        check_clock(self.clock_ns)
        if self.reuse_factor < 1:
            raise BadInput(f"reuse factor {self.reuse_factor} must be at least 1")
        if self.strategy not in STRATEGIES:
            raise BadInput(f"strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    kind: str
    cost: Cost
    latency_cycles: int
    ii: int
    detail: dict = field(default_factory=dict)  # what the figure was built from (weights, adders...)


@dataclass(frozen=True)
class Estimate:
    target: str  # "hls" (hls4ml C++ through Vivado/Vitis HLS) or "rtl" (da4ml Verilog)
    config: EstimateConfig
    layers: tuple[LayerEstimate, ...]
    latency: int | None = None  # the whole design's, when it is not the sum of its layers' (RTL pipelines)
    extra: dict = field(default_factory=dict)
    modules: tuple[tuple[str, str], ...] = ()  # (layer name, PyTorch module), from ``Network.modules``

    @property
    def total(self) -> Cost:
        out = Cost()
        for layer in self.layers:
            out = out + layer.cost
        return out

    @property
    def latency_cycles(self) -> int:
        if self.latency is not None:
            return self.latency
        return sum(layer.latency_cycles for layer in self.layers)

    @property
    def ii(self) -> int:
        return max(layer.ii for layer in self.layers)

    def to_json(self) -> dict:
        part, total = self.config.part, self.total
        used = {"lut": part.lut, "ff": part.ff, "dsp": part.dsp, "bram18": part.bram18, "uram": part.uram}

        def cost_json(c: Cost) -> dict:
            return {"lut": round(c.lut), "ff": round(c.ff), "dsp": c.dsp, "bram18": c.bram18, "uram": c.uram}

        return {
            "target": self.target,
            "part": part.name,
            "clock_ns": self.config.clock_ns,
            "reuse_factor": self.config.reuse_factor,
            "strategy": self.config.strategy,
            "io": self.config.io,
            **self.extra,
            "total": {
                **cost_json(total),
                "latency_cycles": self.latency_cycles,
                "latency_ns": round(self.latency_cycles * self.config.clock_ns, 3),
                "ii": self.ii,
            },
            "utilization_percent": {k: round(100 * cost_json(total)[k] / cap, 3) for k, cap in used.items() if cap},
            "layers": [
                {
                    "name": la.name,
                    **({"module": dict(self.modules)[la.name]} if la.name in dict(self.modules) else {}),
                    "kind": la.kind,
                    **cost_json(la.cost),
                    "latency_cycles": la.latency_cycles,
                    "ii": la.ii,
                    **la.detail,
                }
                for la in self.layers
            ],
        }
