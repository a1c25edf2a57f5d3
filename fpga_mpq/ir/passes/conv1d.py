"""1-D convolutions and pools (``Conv1d``, ``MaxPool1d``, ``AvgPool1d``: time series, audio, jet
constituents) as the 2-D layers they equal on one-row images: (N, C, L) becomes (N, C, 1, L), a
(F, C, K) kernel (F, C, 1, K). It runs before qonnx's channels-last conversion, which takes 2-D only."""

from __future__ import annotations

from onnx import helper

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.quant_nodes import QUANT_OPS, attr

WINDOW_OPS = ("Conv", "MaxPool", "AveragePool")


def _is_1d(node) -> bool:
    return node.op_type in WINDOW_OPS and len(attr(node, "kernel_shape", [0, 0])) == 1


def has_1d_windows(model) -> bool:
    """Whether the graph holds a 1-D convolution or pool (only then does :class:`Conv1dAs2d` run)."""
    return any(_is_1d(n) for n in model.graph.node)


def _as_row(shape: list[int]) -> list[int]:
    """A shape broadcast against (N, C, L), for (N, C, 1, L)."""
    full = [1] * (3 - len(shape)) + list(shape)
    return full[:2] + [1] + full[2:]


class Conv1dAs2d:
    """All at once: the graph input, every 1-D window op's attributes and kernel, the per-channel
    constants of the ops between them, and the shapes (qonnx infers them again)."""

    lowers = ()

    def apply(self, model):
        if not has_1d_windows(model):
            return model, False
        inits = {i.name for i in model.graph.initializer}
        for inp in model.graph.input:
            shape = model.get_tensor_shape(inp.name)
            if inp.name not in inits and shape is not None and len(shape) == 3:
                model.set_tensor_shape(inp.name, _as_row(shape))
        for node in model.graph.node:
            if _is_1d(node):
                self._window(model, node)
            elif node.op_type not in ("Gemm", "MatMul", "Reshape", "Flatten") and not _is_weight_quant(model, node):
                for name in node.input[1:]:
                    value = model.get_initializer(name)
                    if value is not None and value.ndim >= 2 and _reads_rows(model, node):
                        model.set_initializer(name, value.reshape(_as_row(list(value.shape))))
        for node in model.graph.node:
            if node.op_type in ("Reshape",) and _reads_rows(model, node):
                target = model.get_initializer(node.input[1])
                if target is not None and len(target) != 2:
                    raise BadInput(f"node {node.name}: reshapes a 1-D feature map to {target.tolist()}; only a flatten")
        for vi in [v for v in model.graph.value_info if v.name not in inits]:  # activations: inferred again
            model.graph.value_info.remove(vi)
        for out in model.graph.output:
            out.type.tensor_type.ClearField("shape")
        return model, True

    @staticmethod
    def _window(model, node) -> None:
        (k,) = attr(node, "kernel_shape", [0])
        strides, dilations = attr(node, "strides", [1]), attr(node, "dilations", [1])
        pads = attr(node, "pads", [0, 0])
        for a in [a for a in node.attribute if a.name in ("kernel_shape", "strides", "dilations", "pads")]:
            node.attribute.remove(a)
        node.attribute.extend(
            [
                helper.make_attribute("kernel_shape", [1, k]),
                helper.make_attribute("strides", [1, *strides]),
                helper.make_attribute("pads", [0, pads[0], 0, pads[1]]),
                *([helper.make_attribute("dilations", [1, *dilations])] if node.op_type != "AveragePool" else []),
            ]
        )
        if node.op_type != "Conv":
            return
        producer = model.find_producer(node.input[1])
        names = [node.input[1]] if producer is None else [producer.input[0], producer.input[1]]
        for name in names:
            value = model.get_initializer(name)
            if value is not None and value.ndim == 3:
                model.set_initializer(name, value[:, :, None, :])


def _is_weight_quant(model, node) -> bool:
    return node.op_type in QUANT_OPS and model.get_initializer(node.input[0]) is not None


def _reads_rows(model, node) -> bool:
    """The node reads a 3-D activation (the 1-D part of the network)."""
    shape = model.get_tensor_shape(node.input[0]) if node.input else None
    return shape is not None and len(shape) == 3
