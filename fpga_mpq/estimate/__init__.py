"""Resource and latency estimates before any vendor tool runs: the HLS design and the RTL design."""

from fpga_mpq.estimate.hls import dense_cost, estimate_hls
from fpga_mpq.estimate.model import Cost, Estimate, EstimateConfig, LayerEstimate
from fpga_mpq.estimate.parts import PARTS, Part, find_part

__all__ = [
    "PARTS",
    "Cost",
    "Estimate",
    "EstimateConfig",
    "LayerEstimate",
    "Part",
    "dense_cost",
    "estimate_hls",
    "find_part",
]
