"""Bit-level arithmetic costs shared by the estimators: constant products and adder trees.

A product with a constant never needs a multiplier: it is the sum of the constant's nonzero
canonical-signed-digit (CSD) terms, each a shifted copy of the input. Zero weights vanish and
power-of-two weights are wires (one digit, no adder).
"""

from __future__ import annotations

import numpy as np


def csd_digits(w: np.ndarray) -> np.ndarray:
    """Nonzero digits of each integer's canonical signed-digit (non-adjacent) form."""
    n = np.abs(np.asarray(w, dtype=np.int64))
    count = np.zeros(n.shape, dtype=np.int64)
    while n.any():
        odd = (n & 1).astype(bool)
        digit = np.where(odd, 2 - (n & 3), 0)  # +1 when n % 4 == 1, -1 when n % 4 == 3
        count += odd
        n = (n - digit) >> 1
    return count


def bit_length(w: np.ndarray) -> np.ndarray:
    """Magnitude bits of each integer (0 for zero)."""
    n = np.abs(np.asarray(w, dtype=np.int64))
    out = np.zeros(n.shape, dtype=np.int64)
    while n.any():
        out += n > 0
        n >>= 1
    return out


def trailing_zeros(w: np.ndarray) -> np.ndarray:
    """Trailing zero bits of each nonzero integer (0 for zero)."""
    n = np.abs(np.asarray(w, dtype=np.int64))
    out = np.zeros(n.shape, dtype=np.int64)
    live = n > 0
    while True:
        even = live & ((n & 1) == 0)
        if not even.any():
            return out
        out += even
        n = np.where(even, n >> 1, n)


def adder_tree(n_terms: int, term_bits: int) -> tuple[int, int, int]:
    """A balanced tree summing ``n_terms`` values of ``term_bits``: (adders, adder bits, levels).

    Each level's adders are one bit wider than their operands, so the adder bits (one LUT each on
    a carry chain) are counted level by level, not at the final width.
    """
    adders = bits = levels = 0
    width, live = term_bits, n_terms
    while live > 1:
        pairs = live // 2
        width += 1
        adders += pairs
        bits += pairs * width
        live -= pairs
        levels += 1
    return adders, bits, levels
