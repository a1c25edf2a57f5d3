"""A user's folder is sacred: refused outputs, replaced only what the tool made, inputs never
overwritten, failed runs leave the previous result byte for byte, checkpoints never run code."""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from fpga_mpq import api
from fpga_mpq.cli import main
from fpga_mpq.outputs import MARKER, replace_file

JET = ["--input-type", "ap_fixed<16,6>"]


def tree(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (hidden ones included) with its content's hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(Path(folder).rglob("*"))
    }


def run(args: list[str], capsys) -> tuple[int, list[str]]:
    code = main(args)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real (1-epoch) checkpoint, so export has something valid to start from."""
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    api.train(path, epochs=1)
    return path


def _commands(zoo: Path, out: str) -> dict[str, list[str]]:
    """Every command that writes, with the cheapest arguments; the output check comes first."""
    jet = str(zoo / "qkeras_jettagging.onnx")
    return {
        "generate": ["generate", jet, "-o", out, *JET],
        "rtlsim": ["rtlsim", jet, "-o", out, *JET],
        "synth": ["synth", jet, "-o", out, *JET],
        "estimate": ["estimate", jet, "-o", out, *JET],
        "flow": ["flow", "-o", out, "--epochs", "1"],
        "search": ["search", "--method", "uniform", "--max-drop", "1", "-o", out, "--epochs", "1"],
        "train": ["train", "-o", out, "--epochs", "1"],
    }


@pytest.mark.parametrize("out", [".", "", "..", "./", "sub/.."])
@pytest.mark.parametrize("command", ["generate", "rtlsim", "synth", "estimate", "flow", "search", "train"])
def test_current_and_parent_folders_are_refused_and_left_untouched(zoo, tmp_path, monkeypatch, capsys, command, out):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "thesis.txt").write_text("years of work")
    (tmp_path / "notes.txt").write_text("more work")
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    code, err = run(_commands(zoo, out)[command], capsys)
    assert code == 2 and len(err) == 1, err
    assert ("is empty" if out == "" else "current folder or one of its parents") in err[0]
    assert tree(tmp_path) == before


@pytest.mark.parametrize("protected", ["/", "home"])
def test_root_and_home_are_refused(zoo, tmp_path, monkeypatch, capsys, protected):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "keep.txt").write_text("x")
    target = str(tmp_path) if protected == "home" else "/"
    code, err = run(_commands(zoo, target)["generate"], capsys)
    assert code == 2 and len(err) == 1
    assert ("home folder" if protected == "home" else "root folder") in err[0]
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_existing_foreign_folder_is_kept_unless_forced(zoo, tmp_path, capsys):
    prj = tmp_path / "p"
    prj.mkdir()
    (prj / "thesis.txt").write_text("x")
    args = _commands(zoo, str(prj))["generate"]
    code, err = run(args, capsys)
    assert code == 2 and len(err) == 1 and "fpga_mpq did not make" in err[0] and "--force" in err[0]
    assert tree(prj) == {"thesis.txt": hashlib.sha256(b"x").hexdigest()}
    assert main([*args, "--force"]) == 0
    assert not (prj / "thesis.txt").exists() and (prj / MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no scratch folder left beside it


def test_a_folder_the_tool_made_is_replaced(zoo, tmp_path, capsys):
    prj = str(tmp_path / "p")
    assert main(_commands(zoo, prj)["generate"]) == 0
    assert main([*_commands(zoo, prj)["generate"], "--clock", "4"]) == 0
    assert "4" in (tmp_path / "p" / "fpga_mpq.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_an_existing_file_where_a_folder_goes_is_kept(zoo, tmp_path, capsys):
    (tmp_path / "p").write_text("x")
    code, err = run(_commands(zoo, str(tmp_path / "p"))["generate"], capsys)
    assert code == 2 and "is a file fpga_mpq did not make" in err[0]
    assert (tmp_path / "p").read_text() == "x"


def test_flow_refuses_an_output_folder_holding_its_inputs(tmp_path, capsys):
    d = tmp_path / "D"
    d.mkdir()
    np.savez(d / "x.npz", X=np.random.default_rng(0).random((40, 4)), y=np.arange(40) % 3)
    (d / "s.yaml").write_text("input: {bits: 8}\nlayers:\n  - {units: 3, weight_bits: 4, bias_bits: 8, act_bits: 4}\n")
    before = tree(d)
    code, err = run(["flow", "-o", str(d), "--data", str(d / "x.npz"), "--spec", str(d / "s.yaml")], capsys)
    assert code == 2 and len(err) == 1 and "contains an input of this run" in err[0]
    assert tree(d) == before


def test_export_never_overwrites_its_checkpoint(checkpoint, capsys):
    before = checkpoint.read_bytes()
    code, err = run(["export", str(checkpoint), "-o", str(checkpoint)], capsys)
    assert code == 2 and len(err) == 1 and "is also an input of this run" in err[0]
    assert checkpoint.read_bytes() == before


def test_train_never_overwrites_its_spec(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("input: {bits: 8}\nlayers:\n  - {units: 10, weight_bits: 4, bias_bits: 8, act_bits: 4}\n")
    before = spec.read_bytes()
    code, err = run(["train", "--spec", str(spec), "-o", str(spec), "--epochs", "1"], capsys)
    assert code == 2 and "is also an input of this run" in err[0]
    assert spec.read_bytes() == before


def test_train_refuses_a_folder_or_a_foreign_file_before_training(tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    (tmp_path / "paper.pt").write_text("not ours")
    code, err = run(["train", "-o", str(tmp_path / "dir"), "--epochs", "1"], capsys)
    assert code == 2 and "is a folder" in err[0]
    code, err = run(["train", "-o", str(tmp_path / "paper.pt"), "--epochs", "1"], capsys)
    assert code == 2 and "not written by fpga_mpq" in err[0]
    assert (tmp_path / "paper.pt").read_text() == "not ours"


def test_export_replaces_its_own_onnx_but_not_a_foreign_one(checkpoint, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(checkpoint), "-o", str(out)]) == 0
    assert main(["export", str(checkpoint), "-o", str(out)]) == 0  # ours: replaced
    foreign = tmp_path / "theirs.onnx"
    foreign.write_bytes(b"someone's model")
    code, err = run(["export", str(checkpoint), "-o", str(foreign)], capsys)
    assert code == 2 and "not written by fpga_mpq" in err[0]
    assert foreign.read_bytes() == b"someone's model"


def test_a_failed_export_keeps_the_previous_onnx(checkpoint, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(checkpoint), "-o", str(out)]) == 0
    before = tree(tmp_path)
    ck = torch.load(checkpoint, weights_only=True)
    ck["state_dict"]["layers.0.op.weight"][0, 0] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(ck, bad)
    before[bad.name] = hashlib.sha256(bad.read_bytes()).hexdigest()
    code, err = run(["export", str(bad), "-o", str(out)], capsys)
    assert code == 2 and len(err) == 1 and "layers.0.op.weight holds NaN" in err[0]
    assert tree(tmp_path) == before


def test_an_infeasible_search_keeps_the_previous_result(tmp_path, capsys):
    out = tmp_path / "S"
    out.mkdir()
    (out / MARKER).write_text("{}\n")  # an earlier search's folder
    (out / "spec.yaml").write_text("earlier spec\n")
    (out / "model.pt").write_bytes(b"earlier model")
    before = tree(tmp_path)
    args = ["search", "--method", "ptq", "--budget", "luts=10", "-o", str(out), "--epochs", "1"]
    code, err = run(args, capsys)
    assert code == 1 and len(err) == 1 and "no configuration meets" in err[0]
    assert tree(tmp_path) == before


@pytest.mark.parametrize("case", ["symlink", "under a file", "under /proc"])
def test_unusable_output_paths_are_refused(zoo, tmp_path, capsys, case):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("x")
    out = {"symlink": tmp_path / "link", "under a file": tmp_path / "file" / "p", "under /proc": Path("/proc/p")}[case]
    before = tree(tmp_path)
    code, err = run(_commands(zoo, str(out))["generate"], capsys)
    assert code == 2 and len(err) == 1
    assert {"symlink": "symbolic link", "under a file": "is a file, not a folder", "under /proc": "cannot write"}[
        case
    ] in err[0]
    assert tree(tmp_path) == before


def test_missing_parent_folders_are_created_and_removed_again_on_failure(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_text("not onnx")
    code, _ = run(["generate", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "a" / "b" / "p")], capsys)
    assert code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


class _Evil:
    def __init__(self, flag: Path):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def test_a_checkpoint_that_carries_code_is_refused_without_running_it(tmp_path, capsys):
    flag = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump(_Evil(flag), f)
    torch.save({"x": _Evil(flag)}, tmp_path / "evil_zip.pt")
    for path in (evil, tmp_path / "evil_zip.pt"):
        code, err = run(["export", str(path), "-o", str(tmp_path / "m.onnx")], capsys)
        assert code == 2 and len(err) == 1 and "is not a fpga_mpq checkpoint" in err[0]
    assert not flag.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"random bytes \x00\xff", "is not a fpga_mpq checkpoint"),
        (b"", "is not a fpga_mpq checkpoint"),
        ("onnx", "is not a fpga_mpq checkpoint"),
        ({"format": "fpga_mpq.checkpoint/2", "spec": {}, "input_shape": "64"}, "input_shape = '64'"),
        ({"format": "fpga_mpq.checkpoint/2"}, "must be the bit-width spec"),
        ({"format": "fpga_mpq.checkpoint/1", "spec": {}, "n_features": 64}, "no format 'fpga_mpq.checkpoint/2'"),
        ("wrong state", "state_dict must map names to tensors"),
        ("wrong spec", "checkpoint"),
    ],
)
def test_foreign_or_damaged_checkpoints_give_one_error(zoo, checkpoint, tmp_path, capsys, content, message):
    path = tmp_path / "ck.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "onnx":
        path.write_bytes((zoo / "qkeras_jettagging.onnx").read_bytes())
    elif isinstance(content, dict):
        torch.save(content, path)
    else:
        ck = torch.load(checkpoint, weights_only=True)
        if content == "wrong state":
            ck["state_dict"] = [1, 2]
        else:
            ck["spec"] = {"input": "x"}
        torch.save(ck, path)
    code, err = run(["export", str(path), "-o", str(tmp_path / "m.onnx")], capsys)
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_an_input_that_is_a_loop_of_links_is_named(tmp_path, capsys):
    (tmp_path / "a.onnx").symlink_to(tmp_path / "b.onnx")
    (tmp_path / "b.onnx").symlink_to(tmp_path / "a.onnx")
    code, err = run(["generate", str(tmp_path / "a.onnx"), "-o", str(tmp_path / "p")], capsys)
    assert code == 2 and len(err) == 1 and "is a loop of symbolic links" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx"]


def test_a_folder_that_holds_the_home_folder_is_refused_even_with_force(zoo, tmp_path, monkeypatch, capsys):
    home = tmp_path / "h" / "user"
    home.mkdir(parents=True)
    (home / "thesis.tex").write_text("x")
    monkeypatch.setenv("HOME", str(home))
    code, err = run([*_commands(zoo, str(tmp_path / "h"))["generate"], "--force"], capsys)
    assert code == 2 and len(err) == 1 and "home folder or holds it" in err[0]
    assert (home / "thesis.tex").read_text() == "x"


def test_an_output_under_a_dangling_link_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "L").symlink_to(tmp_path / "missing")
    code, err = run(["train", "-o", str(tmp_path / "L" / "ck.pt"), "--epochs", "1"], capsys)
    assert code == 2 and len(err) == 1 and "symbolic link to nothing" in err[0], err


def test_a_json_report_is_readable_like_every_other_output_not_private(tmp_path):
    mask = os.umask(0o022)
    try:
        replace_file(tmp_path / "report.json", lambda p: p.write_text("{}"))
        assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644
    finally:
        os.umask(mask)
