"""``fpga-mpq report DIR...``: one self-contained HTML page from any mix of the tool's output folders.

:mod:`~fpga_mpq.report.collect` reads the folders into records, :mod:`~fpga_mpq.report.charts`
turns them into chart geometry, ``templates/report/report.html.j2`` draws the page: inline CSS and
SVG, no script and nothing fetched, so it opens offline and can be mailed as one file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from fpga_mpq.errors import BadInput
from fpga_mpq.outputs import atomic_file, check_output
from fpga_mpq.report.charts import bar_table, heat_map, pareto_chart
from fpga_mpq.report.collect import Folder, collect

MARK = "<!-- fpga_mpq report sha256={} -->"  # the page's own hash: the file is ours while it is unedited
_MARK_RE = re.compile(r"<!-- fpga_mpq report sha256=([0-9a-f]{64}) -->")
_UNSIGNED = MARK.format("0" * 64)
MAX_PAGE_BYTES = 256 << 20


def _signed(html: str) -> str:
    """``html`` (holding ``_UNSIGNED`` once) with the hash of its bytes in the mark."""
    return html.replace(_UNSIGNED, MARK.format(hashlib.sha256(html.encode()).hexdigest()), 1)


def is_report(path: Path) -> bool:
    """True when ``path`` is a page :func:`write_report` wrote, unedited since: a user's page that
    merely contains the mark's text (or one of ours they edited) is theirs, replaced only with --force."""
    try:
        if Path(path).stat().st_size > MAX_PAGE_BYTES:
            return False
        text = Path(path).read_bytes().decode()
    except (OSError, UnicodeDecodeError):
        return False
    m = _MARK_RE.search(text)
    return m is not None and _signed(text[: m.start()] + _UNSIGNED + text[m.end() :]) == text


def render(folders: list[Folder]) -> str:
    """The page's HTML; the same folders give the same bytes (no time stamp)."""
    from fpga_mpq.hls.generate import render_text

    searches = [(f, s, pareto_chart(s)) for f in folders if (s := f.search) is not None]
    designs = [(f"{f.name}: {d.label}", d) for f in folders if f.search for d in f.search.designs]
    designs += [(f"{f.name}: {f.flow.design.label}", f.flow.design) for f in folders if f.flow]
    return _signed(
        render_text(
            "report/report.html.j2",
            mark=_UNSIGNED,
            folders=folders,
            searches=searches,
            heat=heat_map(designs),
            flows=[f for f in folders if f.flow or f.deployment],
            estimates=[(f, e, bar_table(e)) for f in folders for e in f.estimates],
            checks=[(f, c) for f in folders for c in f.checks],
        )
    )


def write_report(dirs: list[Path], out: Path, force: bool = False) -> dict:
    """Read ``dirs`` and write the page to ``out`` in one rename.

    Raises ``BadInput`` for a folder that holds no report of this tool, a corrupt report (naming the
    file), and an ``out`` that is an input, a folder, or an existing file this function did not
    write (unless ``force``; an input is never overwritten).
    """
    if not dirs:
        raise BadInput("give at least one output folder of fpga_mpq to report on")
    folders = collect(list(dirs))
    inputs = [*dirs, *(p for f in folders for p in f.files())]
    target = check_output(out, inputs, force, owned=is_report)
    html = render(folders)
    with atomic_file(target) as tmp:
        tmp.write_text(html)
    return {"report": str(out), "folders": [{"folder": f.name, "found": f.found()} for f in folders]}
