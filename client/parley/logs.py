"""Quieting the SDK's own log lines for a program that tells its own story."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["quiet"]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Within the block the `parley` loggers say only errors: a script that narrates
    each step (the demo, the smoke test) would be interrupted by library warnings such
    as the throwaway profiles' plaintext-store notice."""
    logger = logging.getLogger("parley")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
