"""Lowering passes on the QONNX graph, one job each, run to a fixed point before the IR walk."""

from fpga_mpq.ir.passes.base import Pass, run_passes
from fpga_mpq.ir.passes.gemm_to_matmul import GemmToMatMul
from fpga_mpq.ir.passes.remove_flatten import RemoveFlatten

LOWERING: tuple[Pass, ...] = (RemoveFlatten(), GemmToMatMul())

__all__ = ["LOWERING", "GemmToMatMul", "Pass", "RemoveFlatten", "run_passes"]
