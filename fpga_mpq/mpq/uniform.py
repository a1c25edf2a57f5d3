"""Uniform precision: every searched quantizer at the same width, QAT-trained; the reference front."""

from __future__ import annotations

from fpga_mpq.models.net import QuantNet
from fpga_mpq.mpq import MethodResult, Problem, Target, make_point, select
from fpga_mpq.mpq.front import Point
from fpga_mpq.mpq.widths import apply_widths
from fpga_mpq.train import qat


def front(problem: Problem) -> list[tuple[Point, QuantNet]]:
    """QAT every candidate width from the float model, the same training ``fpga-mpq train`` does."""
    out = []
    for bits in problem.ladders.acts:
        spec = apply_widths(problem.spec, problem.ladders.uniform(problem.spec, bits))
        model = qat(problem.fmodel, spec, problem.split, problem.train_cfg)
        out.append((make_point(problem, "uniform", f"uniform {bits}", model), model))
    return out


def run(problem: Problem, target: Target) -> MethodResult:
    pairs = front(problem)
    points = [p for p, _ in pairs]
    chosen = select(points, problem, target)
    if chosen is None:
        return MethodResult(None, None, points, reason=f"no uniform width meets {target.describe()}")
    return MethodResult(chosen, next(m for p, m in pairs if p is chosen), points)
