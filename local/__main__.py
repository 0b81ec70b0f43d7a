"""`python -m local`: the whole service on this machine (see local.serve)."""

from __future__ import annotations

import time

# Taken before the heavy imports: the start-up figure covers all of them.
_STARTED = time.perf_counter()

from local.serve import main  # noqa: E402

raise SystemExit(main(started=_STARTED))
