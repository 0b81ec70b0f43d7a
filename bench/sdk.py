"""People for the benchmarks that drive SDK clients on the local stack."""

from __future__ import annotations

from pathlib import Path

from local.testing import LocalStack
from parley import request_code, sign_up
from parley.endpoints import Endpoints
from parley.local_sms import code_from_local_sms, sms_count

__all__ = ["person"]


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
