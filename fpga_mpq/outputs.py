"""Where a command may write, and how: a user's folder is never touched unless this tool made it.

Every output folder carries ``MARKER``. An existing output is replaced only when the tool made it
(the marker for a folder, the tool's own format for a checkpoint or an ONNX file) or with
``force``. The current and parent folders, ``/``, the home folder and anything that equals or
contains an input are refused even with ``force``.

Outputs are built in a hidden scratch path beside the target and swapped into place in one
atomic rename, so a failed or interrupted run leaves the previous result exactly as it was. A
scratch path is named after the process that made it; one left by a killed process is removed by
the next run writing the same target.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fpga_mpq.errors import BadInput

MARKER = ".fpga_mpq-output"
_SCRATCH = ".fpga_mpq-tmp"
_RENAME_EXCHANGE = 2  # renameat2 flag: swap two paths atomically
_LONG_NAME = 200  # bytes of a target's name kept in its scratch name (which adds up to 46)


@dataclass(frozen=True)
class Output:
    """A checked output path: ``path`` is absolute; ``force`` lets it replace what the tool did not make."""

    path: Path
    force: bool = False
    owned: Callable[[Path], bool] | None = None  # for a file output: was this existing file made by us?

    @property
    def is_file(self) -> bool:
        return self.owned is not None


def is_tool_folder(path: Path) -> bool:
    """True when ``path`` is a folder this tool made (it holds the marker)."""
    return Path(path).is_dir() and (Path(path) / MARKER).is_file()


def check_output(
    out: str | os.PathLike,
    inputs: Sequence[str | os.PathLike | None] = (),
    force: bool = False,
    owned: Callable[[Path], bool] | None = None,
    option: str = "-o",
) -> Output:
    """Check an output path before any work starts; ``owned`` makes it a file output.

    Every refusal is a ``BadInput`` naming the path and the reason.
    """
    raw = os.fspath(out)
    if not raw.strip():
        raise BadInput(f"{option} is empty: give an output path")
    where = f"{option} {raw}"
    try:
        return _check_output(raw, where, inputs, force, owned)
    except OSError as e:  # a name too long, a folder we may not read ...
        raise BadInput(f"{where}: {e.strerror or e}") from None
    except RuntimeError as e:  # pathlib's resolve() on a loop of symbolic links
        raise BadInput(f"{where}: {e}") from None


def _check_output(
    raw: str,
    where: str,
    inputs: Sequence[str | os.PathLike | None],
    force: bool,
    owned: Callable[[Path], bool] | None,
) -> Output:
    path = Path(os.path.abspath(raw))
    if path.is_symlink():
        raise BadInput(f"{where} is a symbolic link; give the path it points to")
    real = _real(path)
    _refuse_protected(real, where)
    for given in inputs:
        if given is None:
            continue
        try:
            resolved = Path(given).resolve()
        except RuntimeError:
            raise BadInput(f"input {given} is a loop of symbolic links") from None
        for inp in (_real(Path(os.path.abspath(given))), resolved):  # as given, and where a link leads
            if inp == real:
                raise BadInput(f"{where} is also an input of this run ({given}): outputs never overwrite inputs")
            if inp.is_relative_to(real):
                raise BadInput(f"{where} contains an input of this run ({given}): it would be replaced")
    _check_parent(path, where)
    if path.parent.is_dir():
        _sweep_stale(path)  # a killed run's scratch goes as soon as the next run starts
    result = Output(path, force, owned)
    _check_replaceable(result, where)
    return result


def _real(path: Path) -> Path:
    """``path`` with its parent's symlinks resolved (the last part is kept as written)."""
    return path.parent.resolve() / path.name if path.name else path.resolve()


def _refuse_protected(real: Path, where: str) -> None:
    if real == Path(real.anchor):
        raise BadInput(f"{where} is the root folder: refusing to write there")
    if Path.home().resolve().is_relative_to(real):
        raise BadInput(f"{where} is the home folder or holds it: refusing to replace it")
    if Path.cwd().resolve().is_relative_to(real):
        raise BadInput(f"{where} is the current folder or one of its parents: refusing to replace it")


def _check_parent(path: Path, where: str) -> None:
    """The nearest existing ancestor must be a folder we can create things in (tried, not guessed:
    permission bits do not tell for ``/proc`` or a read-only mount)."""
    for parent in path.parents:
        if parent.is_symlink() and not parent.exists():
            raise BadInput(f"{where}: {parent} is a symbolic link to nothing")
        if parent.exists():
            if not parent.is_dir():
                raise BadInput(f"{where}: {parent} is a file, not a folder")
            probe = _scratch_path(parent, path.name)  # named like scratch: a killed run's probe is swept too
            try:
                probe.mkdir()
                probe.rmdir()
            except OSError as e:
                raise BadInput(f"{where}: cannot write in {parent} ({e.strerror})") from None
            return


def _check_replaceable(out: Output, where: str) -> None:
    p = out.path
    if not (p.exists() or p.is_symlink()):
        return
    if out.is_file:
        if p.is_dir():
            raise BadInput(f"{where} is a folder; give a file path")
        if out.force or out.owned(p):
            return
        raise BadInput(f"{where} exists and was not written by fpga_mpq; choose another path or pass --force")
    if is_tool_folder(p) or out.force:
        return
    kind = "a folder" if p.is_dir() else "a file"
    raise BadInput(
        f"{where} is {kind} fpga_mpq did not make (no {MARKER} marker): "
        "choose a new folder or pass --force to replace it"
    )


@contextlib.contextmanager
def atomic_dir(out: Output | str | os.PathLike, command: str = "") -> Iterator[Path]:
    """Yield a hidden scratch folder beside ``out``; on success it replaces ``out`` in one rename.

    On any failure (an exception, Ctrl-C, SIGTERM) the scratch folder vanishes and ``out`` is as
    it was. A plain path is checked as an output first.
    """
    out = out if isinstance(out, Output) else check_output(out)
    if out.is_file:
        raise TypeError("atomic_dir needs a folder output")
    with _scratch(out, mkdir=True) as tmp:
        (tmp / MARKER).write_text(json.dumps({"made_by": "fpga_mpq", "command": command}) + "\n")
        yield tmp
        _commit(tmp, out)


@contextlib.contextmanager
def atomic_file(out: Output) -> Iterator[Path]:
    """Yield a hidden scratch path beside ``out``; on success it replaces ``out`` in one rename."""
    with _scratch(out, mkdir=False) as tmp:
        yield tmp
        if not tmp.is_file():
            raise BadInput(f"nothing was written for {out.path}")
        _commit(tmp, out)


@contextlib.contextmanager
def _scratch(out: Output, mkdir: bool) -> Iterator[Path]:
    made = _make_parents(out.path.parent)
    _sweep_stale(out.path)
    tmp = _scratch_path(out.path.parent, out.path.name)
    try:
        if mkdir:
            tmp.mkdir()
        yield tmp
    except BaseException:
        _remove(tmp)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        _remove(tmp)


def _scratch_stem(name: str) -> str:
    """The target's name as its scratch paths begin: a long name is cut and told apart by a hash,
    so the scratch name stays within the 255 bytes a file name may have wherever the target fits."""
    if len(os.fsencode(name)) <= _LONG_NAME:
        return name
    stem = name
    while len(os.fsencode(stem)) > _LONG_NAME - 13:  # whole characters, never half of one
        stem = stem[:-1]
    return stem + "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:12]


def _scratch_path(folder: Path, name: str) -> Path:
    return folder / f".{_scratch_stem(name)}{_SCRATCH}-{os.getpid()}-{secrets.token_hex(4)}"


def _make_parents(folder: Path) -> list[Path]:
    """Create the missing folders above an output; returns them so a failed run can remove them."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        for p in reversed(missing):
            p.mkdir()
    except OSError as e:
        raise BadInput(f"cannot create the folder {folder}: {e.strerror}") from None
    return list(reversed(missing))


def _sweep_stale(target: Path) -> None:
    """Remove scratch paths for ``target`` left by processes that no longer run (e.g. SIGKILL)."""
    pattern = re.compile(rf"\.{re.escape(_scratch_stem(target.name))}{_SCRATCH}-(\d+)-[0-9a-f]{{8}}")
    for p in target.parent.iterdir():
        m = pattern.fullmatch(p.name)
        if m and not alive(int(m.group(1))):
            _remove(p)


def _commit(tmp: Path, out: Output) -> None:
    """Put ``tmp`` at ``out.path``; an existing target is swapped out atomically, then removed."""
    target = out.path
    if target.exists() or target.is_symlink():
        _check_replaceable(out, str(target))  # again: something may have appeared since the check
        _exchange(tmp, target)  # tmp now holds the previous output; _scratch removes it
    else:
        os.rename(tmp, target)


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths in one step (Linux renameat2); elsewhere two renames with a tiny gap."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd = -100
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
        if ctypes.get_errno() not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))
    old = a.with_name(a.name + "-old")
    os.rename(b, old)
    os.rename(a, b)
    os.rename(old, a)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def inner_folder(root: Path, name: str) -> Path:
    """``root/name``, to write into: refused when it is a symbolic link (the writes would land
    outside ``root``, in a folder the user never named) or a file."""
    path = Path(root) / name
    if path.is_symlink():
        raise BadInput(f"{path} is a symbolic link: fpga_mpq writes only inside {root}; remove the link")
    if path.exists() and not path.is_dir():
        raise BadInput(f"{path} is a file, not a folder; generate the project again")
    return path


def alive(pid: int) -> bool:
    """True while process ``pid`` runs: its scratch files are still in use."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umask() -> int:
    """The process's umask (read by setting it, so restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replace_file(path: Path, write: Callable[[Path], None]) -> None:
    """Write one file beside ``path`` with ``write`` and rename it into place, so a reader (or a
    concurrent run) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a report is read like any output
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
