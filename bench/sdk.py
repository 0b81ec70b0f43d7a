"""People for the benchmarks that drive SDK clients on the local stack."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from local.testing import LocalStack, running_local_stack
from parley import request_code, sign_up
from parley.endpoints import Endpoints
from parley.local_sms import code_from_local_sms, sms_count

__all__ = ["on_a_local_stack", "person"]

T = TypeVar("T")


def on_a_local_stack(measure: Callable[[LocalStack, Path], Coroutine[Any, Any, T]]) -> T:
    """`measure(stack, home)` run to its end on a local stack of its own, in a
    temporary folder (`home` is where its SDK profiles go)."""
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as work:
        folder = Path(work)
        with running_local_stack(folder, "--quiet") as stack:
            return asyncio.run(measure(stack, folder / "home"))


async def person(stack: LocalStack, home: Path, profile: str, phone: str) -> str:
    """Sign `phone` up as `profile` under `home` (the code from the SMS sink); its user id."""
    endpoints = Endpoints.local(stack.local_file)
    before = await sms_count(stack.sms_url, phone)
    await request_code(phone, endpoints=endpoints)
    code = await code_from_local_sms(stack.sms_url, phone, after=before)
    account = await sign_up(
        profile, phone, code, endpoints=endpoints, home=home, allow_plaintext=True
    )
    return account.user_id
