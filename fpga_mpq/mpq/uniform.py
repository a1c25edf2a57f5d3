"""Uniform precision: every searched quantizer at the same width, QAT-trained; the reference front."""

from __future__ import annotations

from fpga_mpq.models.net import QuantNet
from fpga_mpq.models.spec import Spec
from fpga_mpq.mpq.front import Point
from fpga_mpq.mpq.problem import MethodResult, Problem, Target, make_point, seed_all, select
from fpga_mpq.mpq.widths import apply_widths
from fpga_mpq.train import qat


def train_width(problem: Problem, bits: int) -> tuple[Point, QuantNet]:
    """QAT of every group at ``bits`` from the float model, the same training ``fpga-mpq train`` does."""
    spec = apply_widths(problem.spec, problem.ladders.uniform(problem.spec, bits))
    model = train_spec(problem, spec, f"uniform {bits}")
    return make_point(problem, "uniform", f"uniform {bits}", model), model


def train_spec(problem: Problem, spec: Spec, label: str) -> QuantNet:
    """QAT of ``spec`` from the float model, seeded here, so it gives the same design wherever it runs
    (a Ray task or this process, now or when a search retrains a design it reused)."""
    seed_all(problem.train_cfg.seed)
    return qat(problem.fmodel, spec, problem.split, problem.train_cfg, label)


def choose(pairs: list[tuple[Point, QuantNet]], problem: Problem, target: Target) -> MethodResult:
    """The uniform method's answer from its trained ladder."""
    points = [p for p, _ in pairs]
    chosen = select(points, problem, target)
    if chosen is None:
        return MethodResult(None, None, points, reason=f"no uniform width meets {target.describe()}")
    return MethodResult(chosen, next(m for p, m in pairs if p is chosen), points)


def run(problem: Problem, target: Target) -> MethodResult:
    """Every candidate width in turn (``search`` runs the same widths as parallel tasks instead)."""
    return choose([train_width(problem, bits) for bits in problem.ladders.bits], problem, target)
