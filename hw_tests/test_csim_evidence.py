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
    assert report == {
        "status": "build_failed",
        "log": "report/csim_build.log",
        "project_digest": report["project_digest"],
    }
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


# -- a result is bound to what was simulated (issue 22) ----------------------------------------


def _report_checks(prj: Path, out: Path) -> str:
    assert main(["report", str(prj), "-o", str(out)]) == 0
    return out.read_text().split('<section id="verification">')[1]


def test_a_project_generated_again_during_its_csim_records_nothing(project, zoo, capsys, monkeypatch):
    """generate --force of another configuration lands while the old binary runs: the new project
    was never simulated, so no verdict (and no log) of the old run may appear in it."""
    import fpga_mpq.sim.csim as csim_module
    from fpga_mpq import api
    from fpga_mpq.hls.config import HlsConfig
    from fpga_mpq.ir.types import parse_ap

    real = csim_module.run_tool

    def binary_then_regenerate(cmd, *args, **kw):
        result = real(cmd, *args, **kw)
        if "/build/csim-" in cmd[0]:
            api.generate(zoo / "qkeras_jettagging.onnx", project, HlsConfig(clock_ns=4), parse_ap(JET[1]), force=True)
        return result

    monkeypatch.setattr(csim_module, "run_tool", binary_then_regenerate)
    code, err = main(["csim", str(project), "--random", "500"]), capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "changed while it was simulated" in err[0]
    assert json.loads((project / "fpga_mpq.json").read_text())["config"]["clock_ns"] == 4
    assert not (project / "report" / "csim.json").exists() and not (project / "report" / "csim_run.log").exists()


def test_a_linked_weights_folder_is_refused_and_the_earlier_pass_not_shown(project, tmp_path, capsys):
    weights = project / "firmware" / "weights"
    weights.rename(tmp_path / "elsewhere")
    weights.symlink_to(tmp_path / "elsewhere")
    code, err, _ = _csim(project, capsys)
    assert code == 2 and len(err) == 1 and "firmware/weights is a symbolic link" in err[0]
    checks = _report_checks(project, tmp_path / "r.html")
    assert 'class="check pass"' not in checks and "not current" in checks


def test_build_defines_are_part_of_the_binarys_key(project, capsys, monkeypatch):
    before = {p.name for p in (project / "build").iterdir()}
    monkeypatch.setenv("DEFINES", "-DMPQ_UNUSED_DEFINE")
    assert _csim(project, capsys)[0] == 0
    with_define = {p.name for p in (project / "build").iterdir()}
    monkeypatch.delenv("DEFINES")
    assert _csim(project, capsys)[0] == 0
    assert with_define != before and {p.name for p in (project / "build").iterdir()} == before  # rebuilt


def test_report_takes_the_verdict_from_the_counts_and_only_for_the_sources_on_disk(project, tmp_path, capsys):
    assert 'class="check pass"' in _report_checks(project, tmp_path / "a.html")
    record = project / "report" / "csim.json"
    honest = record.read_text()
    record.write_text(json.dumps(json.loads(honest) | {"mismatches": 7}))
    assert "inconsistent: labelled passed" in _report_checks(project, tmp_path / "b.html")
    record.write_text(honest)
    (project / "firmware" / "parameters.h").write_text((project / "firmware" / "parameters.h").read_text() + "//\n")
    checks = _report_checks(project, tmp_path / "c.html")
    assert 'class="check pass"' not in checks and "not current: the project changed since this run" in checks


def test_a_full_disk_during_the_build_of_edited_sources_leaves_no_pass(project, capsys, monkeypatch):
    import errno

    import fpga_mpq.sim.csim as csim_module

    def full_disk(cmd, *args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    (project / "firmware" / "parameters.h").write_text((project / "firmware" / "parameters.h").read_text() + "//\n")
    monkeypatch.setattr(csim_module, "run_tool", full_disk)
    code = main(["csim", str(project), "--random", "500"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"fpga-mpq csim: error: No space left on device (writing {project})"]
    assert not (project / "report" / "csim.json").exists()  # the pass was for other sources


@pytest.mark.parametrize("command", ["csim", "estimate"])
def test_a_linked_report_folder_is_refused_and_nothing_written_through_it(project, tmp_path, capsys, command):
    outside = tmp_path / "outside"
    outside.mkdir()
    for p in (project / "report").iterdir():
        p.unlink()
    (project / "report").rmdir()
    (project / "report").symlink_to(outside)
    code = main([command, str(project)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "report is a symbolic link" in err[0]
    assert list(outside.iterdir()) == []
