"""Gemm with ``transB``: transpose the weight at its float source, so every Gemm reads (n_in, n_out)."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.passes.base import consumers
from fpga_mpq.ir.quant_nodes import QUANT_OPS, attr


def _transpose_weight(model, gemm, name: str) -> None:
    """Transpose the float initializer behind ``name`` (directly, or under a Quant used only here)."""
    producer = model.find_producer(name)
    if producer is None:
        source = name
    elif producer.op_type in QUANT_OPS and len(consumers(model, name)) == 1:
        source = producer.input[0]
        scale = model.get_initializer(producer.input[1])
        if scale is not None and scale.ndim == 2:  # per-channel scale follows the weight
            model.set_initializer(producer.input[1], np.ascontiguousarray(scale.T))
    else:
        raise BadInput(f"node {gemm.name}: transB weight {name} is not a constant")
    value = model.get_initializer(source)
    if value is None or len(consumers(model, source)) != 1:
        raise BadInput(f"node {gemm.name}: transB weight {name} is not a constant used only here")
    model.graph.initializer.remove(next(i for i in model.graph.initializer if i.name == source))
    model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value.T), source))
    if producer is not None:
        model.set_tensor_shape(name, list(value.T.shape))


class UntransposeGemm:
    """Every transposed Gemm per apply; alpha, beta and transA are refused here, once."""

    lowers = ()

    def apply(self, model):
        changed = False
        for node in model.graph.node:
            if node.op_type != "Gemm":
                continue
            if attr(node, "transA", 0) or attr(node, "alpha", 1.0) != 1.0 or attr(node, "beta", 1.0) != 1.0:
                raise BadInput(f"node {node.name}: Gemm with transA, alpha or beta != 1 is not supported")
            if not attr(node, "transB", 0):
                continue
            _transpose_weight(model, node, node.input[1])
            node.attribute.remove(next(a for a in node.attribute if a.name == "transB"))
            node.attribute.append(helper.make_attribute("transB", 0))
            changed = True
        return model, changed
