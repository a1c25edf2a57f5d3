"""The hostile-input survey (``make fuzz``): a few hundred crafted inputs, each run through the CLI.

The contract for every case: an exit code the README gives (0 ok, 1 verification failed, 2 bad input;
never 3, never a traceback, never a hang past ``CASE_SECONDS``), at most one error line of bounded
length, and no byte changed in the ``outside`` folder a case's inputs point at (links, external data)
nor in the inputs themselves. Prints one row per class with its exit codes, then every broken case;
exits 1 if any case broke the contract.

    python hw_tests/hostile_survey.py [--seed N] [--scale K]   (K multiplies the random cases)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "tests" / "data" / "qonnx_zoo" / "qkeras_jettagging.onnx"
JET_TYPE = ["--input-type", "ap_fixed<16,6>"]
CASE_SECONDS = 120
MAX_LINE = 700  # the CLI caps an error line at 600 characters, plus its prefix
ALLOWED = {0, 1, 2}


class Hang(BaseException):
    """Raised by the alarm: a case ran past ``CASE_SECONDS`` (BaseException: main() must not catch it)."""


@dataclass
class Case:
    kind: str
    name: str
    argv: list[str]
    allowed: frozenset[int] = frozenset({0, 2})
    subprocess_env: dict[str, str] | None = None  # run as a process (stdout / warnings cases)
    stdout: str = "pipe"  # for a process: "pipe", "closed" or "full"


@dataclass
class Outcome:
    case: Case
    code: int | str
    lines: list[str]
    broken: str | None


def _tree(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")) if root.exists() else []:
        key = str(p.relative_to(root))
        out[key] = f"-> {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir() else p.read_bytes()
    return out


def _in_process(case: Case) -> tuple[int | str, list[str]]:
    from fpga_mpq.cli import main

    err, out = io.StringIO(), io.StringIO()
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(Hang()))
    signal.alarm(CASE_SECONDS)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code: int | str = main(case.argv)
    except Hang:
        code = "hang"
    except SystemExit as e:  # argparse's usage errors
        code = e.code if isinstance(e.code, int) else 2
    except BaseException as e:  # noqa: BLE001 - anything escaping main() breaks the contract
        code = f"raised {type(e).__name__}"
    finally:
        signal.alarm(0)
    return code, err.getvalue().splitlines()


def _as_process(case: Case) -> tuple[int | str, list[str]]:
    cmd = [sys.executable, "-m", "fpga_mpq.cli", *case.argv]
    env = os.environ | (case.subprocess_env or {}) | {"PYTHONPATH": str(ROOT)}
    with contextlib.ExitStack() as stack:
        stdout = stack.enter_context(open("/dev/full", "w")) if case.stdout == "full" else subprocess.PIPE
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
        if case.stdout == "closed":
            proc.stdout.close()
        elif proc.stdout is not None:
            stack.callback(proc.stdout.close)
        try:
            err = proc.stderr.read().decode(errors="replace")
            return proc.wait(timeout=CASE_SECONDS), err.splitlines()
        except subprocess.TimeoutExpired:
            proc.kill()
            return "hang", []


def run_case(case: Case, watched: list[Path]) -> Outcome:
    before = [_tree(w) for w in watched]
    code, lines = (_as_process if case.subprocess_env is not None else _in_process)(case)
    broken = None
    if code not in case.allowed or not isinstance(code, int):
        broken = f"exit {code}"
    elif any("Traceback" in line for line in lines) or len(lines) > 1:
        broken = f"{len(lines)} stderr lines"
    elif any(len(line) > MAX_LINE for line in lines):
        broken = f"a {max(map(len, lines))}-character line"
    elif [_tree(w) for w in watched] != before:
        broken = "a watched folder changed"
    return Outcome(case, code, lines, broken)


# -- the inputs the cases start from ---------------------------------------------------------


@dataclass(frozen=True)
class Base:
    work: Path
    outside: Path
    project: Path  # a generated, C-simulated and estimated HLS project
    checkpoint: Path
    records: dict[str, dict]  # the project's real JSON reports, to mutate


def prepare(work: Path) -> Base:
    from fpga_mpq.cli import main

    outside = work / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("root:x:0:0:do not read me\n")
    project = work / "project"
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        assert main(["generate", str(JET), "-o", str(project), *JET_TYPE]) == 0
        assert main(["csim", str(project), "--random", "50"]) == 0
        assert main(["estimate", str(project)]) == 0
        assert main(["train", "--epochs", "1", "-o", str(work / "model.pt")]) == 0
    records = {p.name: json.loads(p.read_text()) for p in (project / "report").glob("*.json")}
    return Base(work, outside, project, work / "model.pt", records)


# -- the classes of hostile input --------------------------------------------------------------


def onnx_mutations(base: Base, rng: random.Random, n: int) -> Iterator[tuple[Case, list[Path]]]:
    data = JET.read_bytes()
    for i in range(n):
        raw = bytearray(data)
        how = rng.choice(["flip", "flip", "truncate", "append", "zero"])
        if how == "flip":
            for _ in range(rng.randint(1, 24)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif how == "truncate":
            raw = raw[: rng.randrange(len(raw))]
        elif how == "append":
            raw += bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))
        else:
            start = rng.randrange(len(raw))
            raw[start : start + rng.randint(1, 200)] = bytes(min(200, len(raw) - start))
        path = base.work / f"onnx{i}.onnx"
        path.write_bytes(bytes(raw))
        out = base.work / f"onnx{i}_prj"
        yield Case("ONNX file mutated", f"{how} {i}", ["generate", str(path), "-o", str(out), *JET_TYPE]), [path]


def external_data(base: Base, rng: random.Random, n: int) -> Iterator[tuple[Case, list[Path]]]:
    import onnx

    kinds = ["absolute", "dotdot", "link to outside", "linked folder", "empty", "missing", "a folder", "device"]
    for i, kind in enumerate(kinds):
        folder = base.work / f"ext{i}"
        folder.mkdir()
        onnx.save(
            onnx.load(str(JET)), str(folder / "m.onnx"), save_as_external_data=True, location="d.bin", size_threshold=0
        )
        data, location = folder / "d.bin", "d.bin"
        if kind == "absolute":
            location = str(base.outside / "secret.txt")
        elif kind == "dotdot":
            location = "../outside/secret.txt"
        elif kind == "link to outside":
            data.unlink()
            data.symlink_to(base.outside / "secret.txt")
        elif kind == "linked folder":
            (folder / "sub").symlink_to(base.outside)
            location = "sub/secret.txt"
        elif kind == "empty":
            location = ""
        elif kind == "missing":
            data.unlink()
        elif kind == "a folder":
            data.unlink()
            data.mkdir()
        else:
            location = "/dev/zero"
        if location != "d.bin":
            proto = onnx.load(str(folder / "m.onnx"), load_external_data=False)
            for init in proto.graph.initializer:
                for e in init.external_data:
                    if e.key == "location":
                        e.value = location
            onnx.save(proto, str(folder / "m.onnx"))
        argv = ["generate", str(folder / "m.onnx"), "-o", str(base.work / f"ext{i}_prj"), *JET_TYPE]
        yield Case("ONNX external data", kind, argv, frozenset({2})), [folder, base.outside]


HOSTILE_VALUES: list[Callable[[random.Random], object]] = [
    lambda r: r.choice([float("inf"), float("-inf"), float("nan")]),
    lambda r: r.choice([1e308, -1e308, 10**400, -(10**30)]),
    lambda r: r.choice(["", "x" * 10_000, "passed", "\n\r\x00"]),
    lambda r: None,
    lambda r: r.choice([True, False]),
    lambda r: [[[[r.random()]]]] * r.randint(0, 5),
    lambda r: {"a": {"b": {"c": [1, {"d": None}]}}},
    lambda r: -r.randint(1, 10**6),
]


def _leaves(doc: object, path: tuple = ()) -> list[tuple]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _leaves(v, (*path, i))] or [path]
    return [path]


def _set(doc: object, path: tuple, value: object) -> object:
    if not path:
        return value
    doc[path[0]] = _set(doc[path[0]], path[1:], value)
    return doc


def json_reports(base: Base, rng: random.Random, n: int) -> Iterator[tuple[Case, list[Path]]]:
    for i in range(n):
        name = rng.choice(sorted(base.records))
        doc = copy.deepcopy(base.records[name])
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(_leaves(doc))
            doc = _set(doc, path, rng.choice(HOSTILE_VALUES)(rng))
        text = json.dumps(doc, allow_nan=True)
        if rng.random() < 0.1:
            text = "[" * 50_000 + "]" * 50_000
        prj = base.work / f"json{i}"
        shutil.copytree(base.project, prj, symlinks=True)
        (prj / "report" / name).write_text(text)
        argv = ["report", str(prj), "-o", str(base.work / f"json{i}.html")]
        yield Case("JSON report crafted", f"{name} {i}", argv), [prj, base.outside]


def specs(base: Base, rng: random.Random, n: int) -> Iterator[tuple[Case, list[Path]]]:
    spec = yaml.safe_load((ROOT / "specs" / "digits_default.yaml").read_text())
    specials = [
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\ninput: {bits: *b}\n",
        "input: {bits: " + "9" * 5000 + "}\nlayers: []\n",
        "input: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "!!python/object/apply:os.system ['true']\n",
        "\ufeffinput: {bits: 8}\n",
    ]
    for i in range(n + len(specials)):
        if i < len(specials):
            text = specials[i]
        else:
            doc = copy.deepcopy(spec)
            for _ in range(rng.randint(1, 3)):
                path = rng.choice(_leaves(doc))
                doc = _set(doc, path, rng.choice(HOSTILE_VALUES)(rng))
            text = yaml.safe_dump(doc, allow_unicode=True)
        path = base.work / f"spec{i}.yaml"
        path.write_text(text)
        argv = ["train", "--spec", str(path), "--epochs=-1", "-o", str(base.work / f"spec{i}.pt")]
        yield Case("spec YAML crafted", f"spec {i}", argv, frozenset({2})), [path]


def checkpoints(base: Base, rng: random.Random, n: int) -> Iterator[tuple[Case, list[Path]]]:
    import torch

    good = torch.load(base.checkpoint, weights_only=True)
    bomb: list = [1]
    for _ in range(40):
        bomb = [bomb, bomb]
    for i in range(n):
        doc = dict(good)
        key = rng.choice(sorted(doc))
        doc[key] = rng.choice([bomb, None, "x" * 10_000, 10**30, [1, 2, 3, 4, 5], {"a": 1}, [10**9], [0]])
        path = base.work / f"ck{i}.pt"
        torch.save(doc, path)
        argv = ["export", str(path), "-o", str(base.work / f"ck{i}.onnx")]
        yield Case("checkpoint crafted", f"{key} {i}", argv, frozenset({2})), [path]


def project_links(base: Base, rng: random.Random, n: int) -> Iterator[tuple[Case, list[Path]]]:
    entries = sorted(p.relative_to(base.project) for p in base.project.iterdir())
    entries += sorted(p.relative_to(base.project) for p in (base.project / "firmware").iterdir())
    for i, rel in enumerate(entries):
        for command in ("csim", "estimate"):
            prj = base.work / f"link{i}_{command}"
            shutil.copytree(base.project, prj, symlinks=True)
            target = base.outside / f"link{i}_{command}"
            (prj / rel).rename(target)
            (prj / rel).symlink_to(target)
            argv = [command, str(prj), *(["--random", "20"] if command == "csim" else [])]
            yield Case("symbolic link in a project", f"{rel} ({command})", argv), [base.outside]


def outputs_and_streams(base: Base, rng: random.Random, n: int) -> Iterator[tuple[Case, list[Path]]]:
    gen = ["generate", str(JET), *JET_TYPE]
    for name in ["a" * 240, "a" * 255, "a" * 256, "new\nline", ".", "..", "/", " ", "-x"]:
        out = str(base.work / name) if name not in (".", "..", "/") else name
        yield Case("output names", repr(name[:12]), [*gen, "-o", out]), [base.outside, base.project]
    est = ["estimate", str(base.project), "--json"]
    yield Case("stdout and warnings", "stdout closed", est, frozenset({141}), {}, "closed"), [base.outside]
    yield Case("stdout and warnings", "stdout /dev/full", est, frozenset({2}), {}, "full"), [base.outside]
    bad = ["export", str(base.work / "none.pt"), "-o", str(base.work / "none.onnx")]
    yield Case("stdout and warnings", "PYTHONWARNINGS=error", bad, frozenset({2}), {"PYTHONWARNINGS": "error"}), []


CLASSES = (onnx_mutations, external_data, json_reports, specs, checkpoints, project_links, outputs_and_streams)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=int, default=1, help="multiplies the random cases of each class")
    a = p.parse_args()
    rng = random.Random(a.seed)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="fpga_mpq_hostile_") as tmp:
        base = prepare(Path(tmp))
        os.chdir(tmp)
        for make in CLASSES:
            for case, watched in make(base, rng, 40 * a.scale):
                outcomes.append(run_case(case, watched))
    table: dict[str, Counter] = defaultdict(Counter)
    for o in outcomes:
        table[o.case.kind][o.code] += 1
    codes = sorted({c for t in table.values() for c in t}, key=str)
    print(f"{'class':<28} {'cases':>5}  " + "  ".join(f"exit {c}" for c in codes) + "  broken")
    for kind, count in table.items():
        broken = sum(1 for o in outcomes if o.case.kind == kind and o.broken)
        cells = "  ".join(f"{count.get(c, 0):>{len(f'exit {c}')}}" for c in codes)
        print(f"{kind:<28} {sum(count.values()):>5}  {cells}  {broken:>6}")
    broken = [o for o in outcomes if o.broken]
    print(f"{len(outcomes)} hostile cases, {len(broken)} broke the contract")
    for o in broken:
        print(f"  BROKEN {o.case.kind} / {o.case.name}: {o.broken}; {' | '.join(o.lines)[:300]}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
