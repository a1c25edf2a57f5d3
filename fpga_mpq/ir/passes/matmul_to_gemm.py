"""A MatMul with a constant weight becomes a Gemm, so the IR builder has one rule for dense layers."""

from __future__ import annotations

from onnx import helper

from fpga_mpq.ir.passes.base import is_constant


class MatMulToGemm:
    """Every MatMul with a constant weight per apply; only (batch, features) inputs, as a Gemm takes."""

    lowers = ("MatMul",)

    def apply(self, model):
        changed = False
        for idx, node in enumerate(list(model.graph.node)):
            if node.op_type != "MatMul" or not is_constant(model, node.input[1]):
                continue
            shape = model.get_tensor_shape(node.input[0])
            if shape is None or len(shape) != 2:
                continue  # left for the builder to name
            gemm = helper.make_node("Gemm", list(node.input), list(node.output), name=node.name)
            gemm.metadata_props.extend(node.metadata_props)  # the user's name of the node
            model.graph.node.remove(node)
            model.graph.node.insert(idx, gemm)  # in place: the graph stays in topological order
            changed = True
        return model, changed
