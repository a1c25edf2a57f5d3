"""Same input, same bytes: every file ``generate`` and ``rtlsim`` write is reproducible."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fpga_mpq import api
from fpga_mpq.ir.types import parse_ap

JET_INPUT = "ap_fixed<16,6>"


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones included) by its relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_same_trees(a: Path, b: Path) -> None:
    left, right = _tree(a), _tree(b)
    assert sorted(left) == sorted(right)
    assert [name for name in left if left[name] != right[name]] == []


def test_generate_writes_the_same_bytes_into_two_folders(zoo, tmp_path):
    jet, t = zoo / "qkeras_jettagging.onnx", parse_ap(JET_INPUT)
    api.generate(jet, tmp_path / "a", input_type=t)
    api.generate(jet, tmp_path / "b", input_type=t)
    _assert_same_trees(tmp_path / "a", tmp_path / "b")


@pytest.mark.rtl
def test_rtlsim_writes_the_same_bytes_into_two_folders(zoo, tmp_path, monkeypatch):
    jet, t = zoo / "qkeras_jettagging.onnx", parse_ap(JET_INPUT)
    for run in ("a", "b"):
        # the same -o from two working folders: report/rtlsim.json records -o as given
        (tmp_path / run).mkdir()
        monkeypatch.chdir(tmp_path / run)
        result = api.rtlsim(jet, Path("rtl"), random=100, input_type=t)
        assert result["mismatches"] == 0
    a, b = tmp_path / "a" / "rtl", tmp_path / "b" / "rtl"
    assert len(list((a / "sim").glob("lib*.so"))) == 1
    assert str(tmp_path) not in (a / "report" / "verilator_build.log").read_text()
    _assert_same_trees(a, b)


@pytest.mark.rtl
def test_a_different_design_rebuilt_in_the_same_folder_loads_its_own_library(tmp_path):
    """The loader reuses a library already loaded from the same path: the stamp must change with the design."""
    from fpga_mpq.estimate.parts import find_part
    from fpga_mpq.ir.from_qonnx import network_from_qonnx
    from fpga_mpq.ir.golden import run
    from fpga_mpq.rtl.project import RtlConfig, build_simulator, pipeline, simulate
    from fpga_mpq.sim.csim import random_inputs
    from fpga_mpq.testing import LayerDraw, MlpDraw, QuantSpec, save_mlp

    def q(bits: int, signed: bool) -> QuantSpec:
        return QuantSpec(bits=bits, frac=1 if signed else 0, signed=signed, narrow=False, mode="ROUND")

    def net(seed: int):
        layers = (
            LayerDraw(8, q(3, True), per_channel=False, bias=None, relu=True, act=q(4, False)),
            LayerDraw(4, q(3, True), per_channel=False, bias=None, relu=False, act=q(8, True)),
        )
        draw = MlpDraw(n_in=8, input=q(6, False), layers=layers, seed=seed)
        return network_from_qonnx(save_mlp(draw, tmp_path / f"mlp{seed}.onnx"))

    first, second = net(1), net(2)
    x = random_inputs(first, 200, 0)
    assert not np.array_equal(run(first, x).result, run(second, x).result)
    cfg, folder, libs = RtlConfig(find_part("xcvu13p")), tmp_path / "rtl", []
    for n in (first, second):
        shutil.rmtree(folder, ignore_errors=True)
        design = pipeline(n, cfg, folder)
        build_simulator(design)
        libs += [p.name for p in (folder / "sim").glob("lib*.so")]
        got, want = simulate(design, n, x)
        np.testing.assert_array_equal(got, want)
    assert len(libs) == 2 and libs[0] != libs[1]
