"""C simulation checks what is on disk now: an edited or deleted source is rebuilt, concurrent
runs do not disturb each other, a failed build replaces the last pass and keeps its log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fpga_mpq.cli import main

JET = ["--input-type", "ap_fixed<16,6>"]


@pytest.fixture
def project(zoo, tmp_path) -> Path:
    prj = tmp_path / "p"
    assert main(["generate", str(zoo / "qkeras_jettagging.onnx"), "-o", str(prj), *JET]) == 0
    assert main(["csim", str(prj), "--random", "200"]) == 0  # a binary exists: the stale one to avoid
    return prj


def _csim(prj: Path, capsys, *args: str) -> tuple[int, list[str], dict]:
    code = main(["csim", str(prj), "--random", "500", *args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err, json.loads((prj / "report" / "csim.json").read_text())


def test_an_edited_nnet_utils_header_is_rebuilt_and_its_bug_caught(project, capsys):
    header = project / "firmware" / "nnet_utils" / "nnet_activation.h"
    text = header.read_text()
    assert "if (datareg > 0)" in text
    header.write_text(text.replace("if (datareg > 0)", "if (datareg > 1000)"))  # ReLU broken
    code, err, report = _csim(project, capsys)
    assert code == 1 and len(err) == 1 and "verification failed" in err[0]
    assert report["status"] == "mismatch" and report["mismatches"] > 0


def test_a_deleted_header_fails_the_build_and_replaces_the_last_pass(project, capsys):
    (project / "firmware" / "parameters.h").unlink()
    code, err, report = _csim(project, capsys)
    assert code == 2 and len(err) == 1 and "did not compile" in err[0]
    assert report == {"status": "build_failed", "log": "report/csim_build.log"}
    assert "parameters.h" in (project / "report" / "csim_build.log").read_text()


def test_a_project_without_its_testbench_gives_one_error(project, capsys):
    for p in sorted((project / "tb").iterdir()):
        p.unlink()
    (project / "tb").rmdir()
    code, err, _ = _csim(project, capsys)
    assert code == 2 and len(err) == 1 and "tb/tb.cpp is missing" in err[0]


@pytest.mark.parametrize("meta", ["", "{}", '{"config": {"io": 3}}', '{"config": '])
def test_a_damaged_project_metadata_file_gives_one_error(project, capsys, meta):
    (project / "fpga_mpq.json").write_text(meta)
    code, err, _ = _csim(project, capsys)
    assert code == 2 and len(err) == 1 and "fpga_mpq.json" in err[0]


def test_concurrent_runs_on_one_project_all_pass(project):
    """Each run has its own data folder; the binary is renamed into place whole."""
    (project / "build").rename(project / "old_build")  # both runs must build
    cmd = [sys.executable, "-m", "fpga_mpq.cli", "csim", str(project), "--random", "2000", "--json"]
    procs = [subprocess.Popen([*cmd, "--seed", str(i)], stdout=subprocess.PIPE, text=True) for i in range(3)]
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
        assert json.loads(out.splitlines()[-1])["mismatches"] == 0
    assert [p.name for p in (project / "build").iterdir() if p.name.startswith(".")] == []


def test_the_shared_precompiled_header_is_keyed_by_every_header_byte(project):
    """A PCH stands for the headers it was made from: an edited ap_types header gets one of its own."""
    from fpga_mpq.sim.pch import _headers, _key, cache_root

    key = _key(project, "csim", _headers(project))
    assert (cache_root().resolve() / "pch" / key / "mpq_pch.h.gch").is_file()  # made by the fixture's csim
    header = project / "firmware" / "ap_types" / "ap_fixed.h"
    header.write_text(header.read_text() + "\n// edited\n")
    assert _key(project, "csim", _headers(project)) != key and _key(project, "trace", _headers(project)) != key
