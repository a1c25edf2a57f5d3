"""The estimator: arithmetic rules, per-layer models, parts, reports and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fpga_mpq import api
from fpga_mpq.cli import main
from fpga_mpq.errors import BadInput
from fpga_mpq.estimate.arith import adder_tree, csd_digits
from fpga_mpq.estimate.hls import estimate_hls
from fpga_mpq.estimate.model import EstimateConfig
from fpga_mpq.estimate.parts import find_part
from fpga_mpq.estimate.rtl import estimate_rtl
from fpga_mpq.ir.network import Dense, InputQuant, Network, accumulator_type
from fpga_mpq.ir.types import FixedType

U8 = FixedType(False, 8, 8)
CFG = EstimateConfig(find_part("xczu9eg"))


def dense_net(weight: np.ndarray, in_type: FixedType = U8, w_bits: int = 8) -> Network:
    w_type = FixedType(True, w_bits, w_bits)
    bias = np.zeros(weight.shape[1], dtype=np.int64)
    acc = accumulator_type(in_type, weight, 0, bias, 0)
    shape = (weight.shape[1],)
    layer = Dense("d", "x", "y", shape, in_type, weight.astype(np.int64), w_type, bias, w_type, acc)
    return Network(InputQuant("in", "x", (weight.shape[0],), in_type, True), (layer,))


def test_csd_digits_count_the_nonzero_signed_digits():
    assert csd_digits(np.array([0, 1, 2, 3, 7, 5, 11, -7, 15, 64])).tolist() == [0, 1, 1, 2, 2, 2, 3, 2, 2, 1]


def test_adder_tree_grows_one_bit_per_level():
    assert adder_tree(1, 8) == (0, 0, 0)
    assert adder_tree(4, 8) == (3, 2 * 9 + 10, 2)
    assert adder_tree(3, 8) == (2, 9 + 10, 2)


def test_zero_weights_cost_nothing_and_power_of_two_weights_need_no_multiplier():
    zeros = estimate_hls(dense_net(np.zeros((16, 4))), CFG).layers[0]
    assert zeros.cost.lut == 0 and zeros.cost.dsp == 0
    shifts = estimate_hls(dense_net(np.full((16, 4), 4)), CFG).layers[0]
    odd = estimate_hls(dense_net(np.full((16, 4), 11)), CFG).layers[0]  # three CSD digits each
    assert shifts.detail["shift_weights"] == 64 and shifts.detail["csd_digits"] == 64
    assert odd.detail["csd_digits"] == 3 * 64
    assert odd.cost.lut > 2.5 * shifts.cost.lut


def test_wide_products_go_to_dsp_slices_and_narrow_ones_do_not():
    wide_in = FixedType(True, 16, 6)
    wide = estimate_hls(dense_net(np.full((8, 2), 1501), wide_in, w_bits=12), CFG).layers[0]
    narrow = estimate_hls(dense_net(np.full((8, 2), 5), wide_in, w_bits=4), CFG).layers[0]
    assert wide.cost.dsp == 16 and wide.detail["dsp_products"] == 16
    assert narrow.cost.dsp == 0


def test_reuse_sets_the_interval_and_resource_strategy_puts_big_weight_arrays_in_bram():
    net = dense_net(np.random.default_rng(0).integers(-100, 100, size=(64, 32)))
    shared = estimate_hls(net, EstimateConfig(CFG.part, reuse_factor=8, strategy="resource"))
    assert shared.ii == 8 and shared.total.bram18 > 0
    assert shared.latency_cycles >= 8
    assert estimate_hls(net, CFG).ii == 1


def test_a_faster_clock_needs_more_pipeline_stages():
    net = dense_net(np.random.default_rng(1).integers(-100, 100, size=(64, 32)))
    slow = estimate_hls(net, EstimateConfig(CFG.part, clock_ns=20)).latency_cycles
    fast = estimate_hls(net, EstimateConfig(CFG.part, clock_ns=2)).latency_cycles
    assert fast > slow


def test_parts_are_found_by_full_part_number_and_unknown_parts_list_the_known_ones():
    assert find_part("xcu250-figd2104-2L-e").name == "xcu250"
    assert find_part("xc7z020clg400-1").dsp == 220
    with pytest.raises(BadInput, match="known parts: .*xc7z020.*xcvu13p"):
        find_part("xc9nothing")


@pytest.mark.parametrize("kwargs", [{"clock_ns": 0}, {"clock_ns": -1}, {"reuse_factor": 0}, {"strategy": "fast"}])
def test_bad_estimate_settings_are_rejected(kwargs):
    with pytest.raises(BadInput):
        EstimateConfig(CFG.part, **kwargs)


def test_rtl_estimate_has_no_dsp_and_counts_da4ml_stages(zoo):
    from fpga_mpq.ir.from_qonnx import network_from_qonnx
    from fpga_mpq.ir.types import parse_ap

    net = network_from_qonnx(zoo / "qkeras_jettagging.onnx", parse_ap("ap_fixed<16,6>"))
    est = estimate_rtl(net, EstimateConfig(find_part("xcvu13p")))
    data = est.to_json()
    assert data["target"] == "rtl" and data["total"]["dsp"] == 0
    assert data["total"]["lut"] > 10_000 and data["total"]["latency_cycles"] >= 1
    assert [la["name"] for la in data["layers"]][0] == "MatMul_0"
    assert abs(sum(la["lut"] for la in data["layers"]) - data["total"]["lut"]) <= len(data["layers"])


def test_estimate_cli_writes_json_and_chart_into_the_project(default_onnx, tmp_path, capsys):
    prj = tmp_path / "prj"
    api.generate(default_onnx, prj)
    assert main(["estimate", str(prj), "--part", "xc7z020", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out["total"]) >= {"lut", "ff", "dsp", "bram18", "latency_cycles", "ii"}
    assert [la["kind"] for la in out["layers"]][:2] == ["dense", "relu"]
    assert out["part"] == "xc7z020" and out["target"] == "hls"
    saved = json.loads((prj / "report" / "estimate.json").read_text())
    assert saved["total"] == out["total"]
    assert (prj / "report" / "estimate.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--part", "xc1234"], "unknown part 'xc1234'; known parts"),
        (["--clock", "0"], "clock period 0.0 ns must be a number from 0.1 to"),
        (["--reuse-factor", "7"], "reuse factor 7 does not divide layer"),
    ],
)
def test_estimate_cli_rejects_bad_settings_with_exit_2(default_onnx, tmp_path, capsys, args, message):
    assert main(["estimate", str(default_onnx), "-o", str(tmp_path / "r"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def small_stream_cnn() -> Network:
    """4x4x2 image -> conv 3x3 pad 1 (3 filters) -> ReLU -> max pool 2x2 -> flatten -> dense 12x2."""
    from fpga_mpq.ir.network import Activation, Conv, Pool, Reshape
    from fpga_mpq.ir.types import Overflow, Rounding

    rng = np.random.default_rng(0)
    u4, w4 = FixedType(False, 4, 4), FixedType(True, 4, 4)
    act = FixedType(False, 4, 4, Rounding.RND_CONV, Overflow.SAT)
    cw, cb = rng.integers(-7, 8, size=(3, 3, 2, 3)), np.zeros(3, dtype=np.int64)
    c_acc = accumulator_type(u4, cw.reshape(18, 3), 0, cb, 0)
    dw, db = rng.integers(-7, 8, size=(12, 2)), np.zeros(2, dtype=np.int64)
    d_acc = accumulator_type(act, dw, 0, db, 0)
    layers = (
        Conv("conv", "x", "c", (4, 4, 3), u4, cw, w4, cb, w4, c_acc, (1, 1), (1, 1, 1, 1), 1),
        Activation("relu", "c", "r", (4, 4, 3), c_acc, True, act),
        Pool("pool", "r", "p", (2, 2, 3), act, act, "max", (2, 2), (2, 2), (0, 0, 0, 0)),
        Reshape("flat", "p", "f", (12,), act),
        Dense("dense", "f", "y", (2,), act, dw, w4, db, w4, d_acc),
    )
    return Network(InputQuant("in", "x", (4, 4, 2), u4, True), layers)


def test_fifo_and_line_buffer_memories_follow_the_stated_rule():
    from fpga_mpq.estimate.hls import fifo_cost, line_buffer_cost

    assert fifo_cost(2, 24).ff == 48 and fifo_cost(2, 24).lut == 0  # shallow: registers
    assert fifo_cost(8, 24).lut == 24 and fifo_cost(8, 24).bram18 == 0  # 192 bits: SRL32
    assert fifo_cost(19, 64).bram18 == 2  # 1216 bits: BRAM18, 64 bits wide = two 36-bit halves
    assert line_buffer_cost(2, 6, 8).lut == 3  # 96 bits: SRL32
    assert line_buffer_cost(2, 10, 64).bram18 == 4  # 1280 bits: a BRAM18 per row and 36 bits


def test_stream_cnn_estimate_prices_line_buffers_fifos_and_the_dataflow_interval():
    net = small_stream_cnn()
    est = estimate_hls(net, EstimateConfig(CFG.part, io="stream"))
    conv, relu, pool, flat, dense = est.layers
    # conv: 2 rows of the 6-pixel padded width, 2 channels of 4 bits; output 0 needs the padded
    # pixel (2, 2) = real pixel (1, 1): 4 + 2 = 6 pixels read, then one pipeline stage
    assert conv.detail["line_buffer_bits"] == 2 * 6 * 2 * 4 and conv.latency_cycles == 6 + 1
    assert conv.detail["fifo_bits"] == 2 * 2 * 4 + 2 * 3 * net.layers[0].out.width  # padding + output FIFO
    assert conv.ii == 16 and relu.ii == 16 and relu.latency_cycles == 1 + 1
    # hls4ml's max pool: 1 row of 4 pixels x 3 channels x 4 bits; output 0 after pixel (1, 1)
    assert pool.detail["line_buffer_bits"] == 48 and pool.latency_cycles == 4 + 2 + 1
    assert flat.cost.lut == 0 and flat.latency_cycles == 0 and flat.detail["fifo_depths"] == []
    assert dense.detail["pixels_in"] == 4 and dense.ii == 4 + 1  # reads the 4 pooled pixels, then one dense
    assert est.ii == 16
    assert est.latency_cycles == sum(la.latency_cycles for la in est.layers) + 16
