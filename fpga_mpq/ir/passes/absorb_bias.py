"""A constant Add after a bias-free Gemm becomes the Gemm's bias (Brevitas exports a biased
``QuantLinear`` either as ``Gemm(x, W, b)`` or as ``MatMul`` then ``Add``)."""

from __future__ import annotations

from fpga_mpq.ir.passes.base import consumers, is_constant


class AbsorbBiasAdd:
    """Every such Add per apply: the Gemm's only reader, the Gemm output not the graph's."""

    lowers = ()

    def apply(self, model):
        outputs = {o.name for o in model.graph.output}
        changed = False
        for node in list(model.graph.node):
            has_bias = len(node.input) > 2 and node.input[2] != ""
            if node.op_type != "Gemm" or has_bias or node.output[0] in outputs:
                continue
            readers = consumers(model, node.output[0])
            if len(readers) != 1 or readers[0].op_type != "Add":
                continue
            add = readers[0]
            other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
            if other == node.output[0] or not is_constant(model, other):
                continue
            del node.input[2:]
            node.input.append(other)
            node.output[0] = add.output[0]
            model.graph.node.remove(add)
            changed = True
        return model, changed
