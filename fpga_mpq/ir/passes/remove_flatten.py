"""Drop Reshape / Flatten / Identity between (batch, features) tensors: they change nothing."""

from __future__ import annotations

import numpy as np

from fpga_mpq.ir.passes.base import rewire

SHAPE_OPS = ("Reshape", "Flatten", "Identity")


class RemoveFlatten:
    """Every flatten of one sample per apply."""

    lowers = ()

    def apply(self, model):
        inits = {i.name for i in model.graph.initializer}
        changed = False
        for node in list(model.graph.node):
            if node.op_type not in SHAPE_OPS or node.input[0] in inits:
                continue
            src, dst = model.get_tensor_shape(node.input[0]), model.get_tensor_shape(node.output[0])
            if src is None or dst is None or np.prod(src[1:]) != np.prod(dst[1:]) or len(dst) > 2 or len(src) > 2:
                continue  # it changes a shape: the builder decides (a channels-last image becomes a vector)
            if node.output[0] in {o.name for o in model.graph.output}:
                continue
            model.graph.node.remove(node)
            rewire(model, node.output[0], node.input[0])
            changed = True
        return model, changed
