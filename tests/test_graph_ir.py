"""The IR is a graph of named, shaped tensors: the network checks its wiring once, when built, so
every stage can walk it with an environment keyed by tensor name."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.golden import run
from fpga_mpq.ir.network import Activation, Add, Dense, InputQuant, Network, accumulator_type, sum_type
from fpga_mpq.ir.types import FixedType, Overflow, Rounding

U4 = FixedType(False, 4, 2)
W4 = FixedType(True, 4, 1)
A4 = FixedType(False, 4, 3, Rounding.RND, Overflow.SAT)


def _dense(name: str, src: str, dst: str, n_in: int, n_out: int, in_type: FixedType, seed: int) -> Dense:
    w = np.random.default_rng(seed).integers(-7, 8, (n_in, n_out))
    b = np.zeros(n_out, dtype=np.int64)
    return Dense(name, src, dst, (n_out,), in_type, w, W4, b, W4, accumulator_type(in_type, w, W4.frac, b, W4.frac))


def residual() -> Network:
    """x -> d1 -> a1 -+-> d2 -> a2 -> add -> d3
    +-------------^"""
    d1 = _dense("d1", "x", "t1", 6, 5, U4, 1)
    a1 = Activation("a1", "t1", "h", (5,), d1.out, True, A4)
    d2 = _dense("d2", "h", "t2", 5, 5, A4, 2)
    a2 = Activation("a2", "t2", "r", (5,), d2.out, True, A4)
    add = Add("add", ("h", "r"), "s", (5,), (A4, A4), sum_type(A4, A4))
    d3 = _dense("d3", "s", "y", 5, 3, add.out, 3)
    return Network(InputQuant("q", "x", (6,), U4, True), (d1, a1, d2, a2, add, d3))


def test_a_residual_graph_is_built_and_its_tensors_are_named_in_order():
    net = residual()
    assert list(net.tensors) == ["x", "t1", "h", "t2", "r", "s", "y"]
    assert net.tensors["s"].shape == (5,) and not net.is_chain


def test_golden_adds_the_two_branches_exactly():
    net = residual()
    x = np.random.default_rng(0).uniform(0, 4, (100, 6))
    trace = run(net, x)
    frac = net.layers[4].out.frac
    h, r = trace.mantissas["h"], trace.mantissas["r"]
    assert np.array_equal(trace.mantissas["s"], (h + r) << (frac - A4.frac))
    assert list(trace.mantissas) == list(net.tensors)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: (ls[1], ls[0], *ls[2:]), "input t1 is not written by an earlier layer"),
        (lambda ls: (*ls[:2], replace(ls[2], in_type=U4), *ls[3:]), "input h is .* the layer reads"),
        (lambda ls: (*ls[:3], replace(ls[3], output="t1"), *ls[4:]), "tensor t1 is written twice"),
        (lambda ls: (*ls[:4], replace(ls[4], inputs=("h", "t1")), ls[5]), "input t1 is .* the layer reads"),
        (lambda ls: (*ls[:5], replace(ls[5], shape=(4,))), "output shape \\(4,\\), its inputs give \\(3,\\)"),
        (lambda ls: (*ls[:4], replace(ls[5], input="h", in_type=A4)), "tensor r is computed but never used"),
    ],
)
def test_a_miswired_graph_is_refused_naming_the_layer_or_tensor(edit, message):
    net = residual()
    with pytest.raises(BadInput, match=message):
        replace(net, layers=edit(net.layers))
