"""Every stage dispatches on the layer kind exhaustively: an unknown kind is an error naming the
layer, never a silent pass-through (the golden model once returned its input unchanged)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from fpga_mpq.errors import BadInput
from fpga_mpq.ir.from_qonnx import network_from_qonnx
from fpga_mpq.ir.types import FixedType


@dataclass(frozen=True)
class Mystery:
    """A layer kind no stage knows."""

    name: str
    input: str
    output: str
    shape: tuple[int, ...]
    in_type: FixedType
    out: FixedType

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@pytest.fixture(scope="module")
def mystery_net(default_onnx):
    net = network_from_qonnx(default_onnx)
    first, second = net.layers[0], net.layers[1]
    odd = Mystery("odd_layer", first.output, "odd_out", first.shape, first.out, first.out)
    return replace(net, layers=(first, odd, replace(second, input="odd_out"), *net.layers[2:]))


def _golden(net, tmp_path):
    import numpy as np

    from fpga_mpq.ir.golden import run

    run(net, np.zeros((2, net.input.n), dtype=np.float32))


def _hls(net, tmp_path):
    from fpga_mpq.hls.config import HlsConfig
    from fpga_mpq.hls.generate import write_project

    write_project(net, HlsConfig(), tmp_path, "m.onnx")


def _rtl(net, tmp_path):
    from fpga_mpq.rtl.trace import trace_network

    trace_network(net)


def _estimate(net, tmp_path):
    from fpga_mpq.estimate.hls import estimate_hls
    from fpga_mpq.estimate.model import EstimateConfig
    from fpga_mpq.estimate.parts import find_part

    estimate_hls(net, EstimateConfig(find_part("xczu9eg")))


@pytest.mark.parametrize(
    ("stage", "name"),
    [(_golden, "the golden model"), (_hls, "the HLS generator"), (_rtl, "the RTL tracer"), (_estimate, "estimator")],
)
def test_an_unknown_layer_kind_is_an_error_naming_it(mystery_net, tmp_path, stage, name):
    with pytest.raises(BadInput, match=rf"layer odd_layer: kind Mystery is not supported by .*{name}"):
        stage(mystery_net, tmp_path)
