"""The pass contract (qonnx's): ``apply(model) -> (model, changed)``; one driver runs them to a fixed point."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.quant_nodes import QUANT_OPS

MAX_ROUNDS = 1000


class Pass(Protocol):
    lowers: tuple[str, ...]  # op types it replaces by ops the IR builder handles

    def apply(self, model) -> tuple[object, bool]: ...


def run_passes(model, passes: Sequence[Pass]):
    """Copy the model once, then apply each pass until it reports no change."""
    model = copy.deepcopy(model)
    for p in passes:
        for _ in range(MAX_ROUNDS):
            model, changed = p.apply(model)
            if not changed:
                break
        else:
            raise BadInput(f"lowering pass {type(p).__name__} did not converge in {MAX_ROUNDS} rounds")
    return model


def is_constant(model, name: str) -> bool:
    """An initializer, or a quantizer applied to one (a weight or bias before folding)."""
    if model.get_initializer(name) is not None:
        return True
    producer = model.find_producer(name)
    return (
        producer is not None
        and producer.op_type in QUANT_OPS
        and all(model.get_initializer(x) is not None for x in producer.input)
    )


def consumers(model, tensor: str) -> list:
    return [n for n in model.graph.node if tensor in n.input]


def rewire(model, old: str, new: str) -> None:
    """Make every reader of ``old`` read ``new`` (and the graph output, if ``old`` was it)."""
    for n in model.graph.node:
        for i, name in enumerate(n.input):
            if name == old:
                n.input[i] = new
    for out in model.graph.output:
        if out.name == old:
            out.name = new
