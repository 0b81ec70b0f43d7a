"""A link code as a QR code made of text, for `parley link` (segno makes the code).

Two rows of modules per line with half blocks, light modules drawn and dark ones
left blank, so it reads as dark-on-light on a terminal with a dark background,
with the quiet zone around it that scanners need."""

from __future__ import annotations

import segno

__all__ = ["QUIET_ZONE", "qr_lines", "qr_text"]

QUIET_ZONE = 2  # modules of light border (the standard's 4 is wider than needed on screen)
# (top light, bottom light) -> the character of one column of a line
_CELLS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def qr_lines(text: str) -> list[str]:
    """`text` as a QR code (error correction M or better), one string per terminal line."""
    code = segno.make_qr(text, error="m")
    rows = [[not bool(module) for module in row] for row in code.matrix_iter(border=QUIET_ZONE)]
    if len(rows) % 2:
        rows.append([True] * len(rows[0]))  # light padding under an odd last row
    return [
        "".join(_CELLS[top, bottom] for top, bottom in zip(rows[i], rows[i + 1], strict=True))
        for i in range(0, len(rows), 2)
    ]


def qr_text(text: str) -> str:
    return "\n".join(qr_lines(text))
