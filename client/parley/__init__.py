"""Parley client SDK: end-to-end encrypted messaging over the Parley service."""

from __future__ import annotations

__all__: list[str] = []
__version__ = "0.1.0"
