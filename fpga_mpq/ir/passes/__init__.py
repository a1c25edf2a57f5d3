"""Lowering passes on the QONNX graph, one job each, run to a fixed point before the IR is built."""

from fpga_mpq.ir.passes.absorb_bias import AbsorbBiasAdd
from fpga_mpq.ir.passes.base import Pass, run_passes
from fpga_mpq.ir.passes.channels_last import (
    AbsorbTransposeIntoFlatten,
    CancelTransposePair,
    ConcatChannelsLast,
    DropOnePixelTranspose,
    PoolToOnePixel,
    ReduceMeanToGlobalPool,
    SkipTransposePair,
    TransposeBeforeInputQuant,
)
from fpga_mpq.ir.passes.matmul_to_gemm import MatMulToGemm
from fpga_mpq.ir.passes.remove_flatten import RemoveFlatten
from fpga_mpq.ir.passes.untranspose_gemm import UntransposeGemm

LOWERING: tuple[Pass, ...] = (
    TransposeBeforeInputQuant(),
    SkipTransposePair(),
    ConcatChannelsLast(),
    CancelTransposePair(),
    PoolToOnePixel(),
    DropOnePixelTranspose(),
    ReduceMeanToGlobalPool(),
    RemoveFlatten(),
    UntransposeGemm(),
    MatMulToGemm(),
    AbsorbTransposeIntoFlatten(),
    AbsorbBiasAdd(),
)

__all__ = [
    "LOWERING",
    "AbsorbBiasAdd",
    "AbsorbTransposeIntoFlatten",
    "CancelTransposePair",
    "ConcatChannelsLast",
    "DropOnePixelTranspose",
    "MatMulToGemm",
    "Pass",
    "PoolToOnePixel",
    "ReduceMeanToGlobalPool",
    "RemoveFlatten",
    "SkipTransposePair",
    "TransposeBeforeInputQuant",
    "UntransposeGemm",
    "run_passes",
]
