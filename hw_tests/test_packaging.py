"""A non-editable install (a wheel) carries everything read at run time: it generates and simulates alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "fpga_mpq" / "templates"


def _build_wheel(tmp_path: Path) -> Path:
    """Build from a clean copy of the sources: an in-tree build would leave ``build/`` in the
    repository, and a stale ``build/lib`` there can leak deleted files into the wheel."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "fpga_mpq", src / "fpga_mpq", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = dist.glob("fpga_mpq-*.whl")
    return wheel


def _cli(args: list[str], cwd: Path, target: Path) -> dict:
    """Run the CLI with the installed wheel first on the path; its ``--json`` summary."""
    env = os.environ | {"PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-m", "fpga_mpq.cli", *args, "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_wheel_ships_every_template_and_generates_a_project_that_simulates_exactly(zoo, tmp_path):
    wheel = _build_wheel(tmp_path)
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(
        p.relative_to(ROOT).as_posix() for p in TEMPLATES.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert any(s.endswith(".j2") for s in sources) and any(s.endswith(".h") for s in sources)
    assert [s for s in sources if s not in shipped] == []

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    work = tmp_path / "work"  # outside the repository: nothing can be read relative to it
    work.mkdir()
    env = os.environ | {"PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import fpga_mpq; print(fpga_mpq.__file__)"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(target), f"the editable fpga_mpq was imported: {where}"

    model = zoo / "qkeras_jettagging.onnx"
    gen = _cli(["generate", str(model), "-o", "prj", "--input-type", "ap_fixed<16,6>"], work, target)
    assert gen["layers"] >= 1
    for header in ("mpq_threshold.h", "mpq_trace.h", "mpq_weights.h"):
        assert (work / "prj" / "firmware" / header).is_file()
    sim = _cli(["csim", "prj", "--random", "50"], work, target)
    assert sim["samples"] == 50 and sim["mismatches"] == 0
