"""fpga_mpq: mixed-precision networks from PyTorch to bit-exact FPGA HLS projects.

The commands are functions here too: ``fpga_mpq.train``, ``export``, ``generate``, ``csim``,
``flow`` (see ``fpga_mpq.api``). They are imported on first use, so importing the package is cheap.
"""

from __future__ import annotations

API = ("train", "export", "generate", "csim", "flow")


def __getattr__(name: str):
    if name in API:
        from fpga_mpq import api

        return getattr(api, name)
    raise AttributeError(f"module 'fpga_mpq' has no attribute {name!r}")
