"""A precompiled header of ap_types and nnet_utils, shared by every C-sim build that can use it.

A project's build spends much of its time parsing the same third-party headers. The header is
precompiled once per (compiler, flags, header contents) into a cache folder of our own, never into a
user's folder, and passed to the project's Makefile as ``PCH``. The key holds the bytes of every
header the PCH could stand for, so an edited ``ap_fixed_base.h`` gets a PCH of its own; g++ parses
the header text itself wherever a PCH does not fit, so a PCH can speed a build up, never change it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from fpga_mpq.errors import BadInput
from fpga_mpq.sim.make_env import build_vars_key, make_env
from fpga_mpq.tools import run_tool

PCH_HEADER = Path(__file__).resolve().parents[1] / "templates" / "hls" / "mpq_pch.h"  # package data
CACHE_ENV = "FPGA_MPQ_CACHE"  # the cache folder (default: $XDG_CACHE_HOME/fpga_mpq, else ~/.cache/fpga_mpq)
HEADER_FOLDERS = ("ap_types", "nnet_utils")


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fpga_mpq"


def _compiler_version(cxx: str) -> bytes:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return b""


def _headers(prj: Path) -> list[Path] | None:
    """Every file the PCH could stand for: all of ap_types and nnet_utils, and a file of firmware/ that
    shadows an ap_types header (``-Ifirmware`` is searched first). None if any is a link: its target
    could change with no byte of the project changing."""
    firmware = prj / "firmware"
    if any((firmware / f).is_symlink() or not (firmware / f).is_dir() for f in HEADER_FOLDERS):
        return None
    files = [p for f in HEADER_FOLDERS for p in sorted((firmware / f).rglob("*")) if p.is_symlink() or p.is_file()]
    files += [p for p in sorted(firmware.iterdir()) if (firmware / "ap_types" / p.name).exists()]
    return None if any(p.is_symlink() for p in files) else files


def _key(prj: Path, variant: str, headers: list[Path]) -> str:
    """Everything the PCH depends on: the compiler, the project's Makefile (its flags), the
    environment's build variables, the variant and every byte of ``headers``."""
    cxx = os.environ.get("CXX", "g++")
    h = hashlib.sha256(f"{variant}\0".encode() + build_vars_key())
    h.update(_compiler_version(cxx))
    h.update(PCH_HEADER.read_bytes())
    h.update((prj / "Makefile").read_bytes())
    for p in headers:
        h.update(f"\0{p.relative_to(prj)}\0".encode())
        h.update(p.read_bytes() if p.is_file() else b"folder")
    return h.hexdigest()[:24]


def precompiled_header(prj: Path, variant: str, timeout: float) -> Path | None:
    """The cached ``mpq_pch.h`` (its ``.gch`` beside it) for this project's headers and flags, built
    on first use; None where none can be had (the build then goes without: only slower)."""
    root = cache_root().resolve()
    if not re.fullmatch(r"[\w./+-]+", str(root)):  # the Makefile's shell would split it
        return None
    try:
        headers = _headers(prj)
        if headers is None:
            return None
        folder = root / "pch" / _key(prj, variant, headers)
        header, gch = folder / "mpq_pch.h", folder / "mpq_pch.h.gch"
        if gch.is_file() and header.is_file():
            return header
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PCH_HEADER, folder / f".mpq_pch.h.{os.getpid()}")
        os.replace(folder / f".mpq_pch.h.{os.getpid()}", header)
        partial = folder / f".mpq_pch.h.gch.{os.getpid()}"
        log = folder / f".build.{os.getpid()}.log"
        target = "trace-pch" if variant == "trace" else "pch"
        try:
            proc = run_tool(
                ["make", "-s", target, f"PCH_SRC={header}", f"PCH_OUT={partial}"], prj, log, timeout, env=make_env()
            )
            if proc.returncode != 0 or not partial.is_file():
                return None
            os.replace(partial, gch)  # whole or not at all: a concurrent build never reads half of one
        finally:
            partial.unlink(missing_ok=True)
            log.unlink(missing_ok=True)
        return header
    except (OSError, BadInput):  # an unwritable or full cache, a stuck compiler: build without
        return None
