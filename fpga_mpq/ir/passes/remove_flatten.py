"""Drop Reshape / Flatten / Identity on the activation path: the IR is already (batch, features)."""

from __future__ import annotations

import numpy as np

from fpga_mpq.ir.passes.base import rewire

SHAPE_OPS = ("Reshape", "Flatten", "Identity")


class RemoveFlatten:
    """One shape-only node per apply; the driver repeats it until none is left."""

    def apply(self, model):
        inits = {i.name for i in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type not in SHAPE_OPS or node.input[0] in inits:
                continue
            src, dst = model.get_tensor_shape(node.input[0]), model.get_tensor_shape(node.output[0])
            if src is None or dst is None or np.prod(src[1:]) != np.prod(dst[1:]) or len(dst) > 2:
                continue  # not a flatten of one sample: leave it for the walker to reject
            if node.output[0] in {o.name for o in model.graph.output}:
                continue
            model.graph.node.remove(node)
            rewire(model, node.output[0], node.input[0])
            return model, True
        return model, False
