"""`make smoke` against the session's local stack: every step passes, nothing is
texted to a test number; and a stack that refuses the run fails it, naming the step."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from parley import Client
from parley.smoke import Report, SmokeFailed, run, target_from
from parley.testnumbers import is_fictional
from tests.e2e.conftest import ROOT, LocalStack

WAIT_S = 180.0  # a guard against hanging, not a measurement
STEPS = (
    "find the stack and its test numbers' codes",
    "A signs up with a test number (no SMS)",
    "B signs up with a test number (no SMS)",
    "both connect and sync",
    "A and B find each other in the directory",
    "A sends a message: ✓ (stored)",
    "B receives and decrypts it",
    "A sees ✓✓ (delivered)",
    "B reads it: A sees read ✓✓",
    "B replies; A receives it",
    "A sends an attachment (encrypted upload)",
    "B downloads and decrypts it: same bytes",
    "A creates a group with B",
    "A sends in the group; B receives it",
    "B answers in the group; A receives it",
    "A and B ask for account deletion codes (not texted)",
    "A deletes its account; B no longer finds it",
    "B deletes its account",
)


def smoke(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley.smoke", "--local-file", str(stack.local_file), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )


def texted(stack: LocalStack) -> list[str]:
    with urllib.request.urlopen(stack.sms_url, timeout=10) as answer:  # noqa: S310 (loopback)
        return [m["phone"] for m in json.load(answer)]


def account_of(stack: LocalStack, phone: str) -> list[dict[str, object]]:
    """The users table's items that name `phone` (what the directory would find)."""
    ddb = stack.moto("dynamodb")
    (table,) = [t for t in ddb.list_tables()["TableNames"] if t.endswith("-users")]
    items: list[dict[str, object]] = ddb.scan(TableName=table)["Items"]
    return [item for item in items if phone in json.dumps(item, default=repr)]


def test_the_smoke_passes_every_step_against_the_local_stack(local_stack: LocalStack) -> None:
    done = smoke(local_stack)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for number, name in enumerate(STEPS, 1):
        line = re.compile(rf"^ *{number}\. {re.escape(name)} \.+ ok +\d+\.\d\d s$", re.MULTILINE)
        assert line.search(out), f"step {number} {name!r} not reported as passed:\n{out}"
    assert f"smoke passed: {len(STEPS)} steps in " in out
    assert "FAILED" not in out
    # the two accounts signed up with test numbers, neither was texted, both are gone
    used = re.findall(r"^ +[AB] is (\+\d+)$", out, re.MULTILINE)
    assert len(used) == 2
    assert all(is_fictional(n) for n in used)
    assert not set(used) & set(texted(local_stack))
    for phone in used:
        assert not account_of(local_stack, phone)


def test_a_failing_step_stops_the_smoke_with_status_1_and_names_it(
    local_stack: LocalStack,
) -> None:
    # fictional numbers this stack does not treat as test numbers: their derived codes fail
    done = smoke(local_stack, "--numbers", "+12125550150,+12125550151")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert re.search(r"^ *1\. find the stack.* ok ", out, re.MULTILINE)
    assert re.search(r"^ *2\. A signs up with a test number \(no SMS\) \.+ FAILED ", out, re.M)
    assert "smoke FAILED at step 2, 'A signs up with a test number (no SMS)'" in out
    assert "expected: a test number to sign up with the code derived from the stack's secret" in out
    assert re.search(r"got: +\+1212555015[01]'s derived code was refused \(401 invalid_code", out)
    assert "3. B signs up" not in out
    assert "smoke passed" not in out


async def test_a_later_failure_names_its_step_and_deletes_the_accounts_made(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def tampered(self: Client, message: Any, progress: Any = None) -> Path:
        path = tmp_path / "tampered.bin"
        path.write_bytes(b"not what was sent")
        return path

    monkeypatch.setattr(Client, "download", tampered)
    out = io.StringIO()
    with pytest.raises(SmokeFailed) as failed:
        await run(
            lambda: target_from(None, local_stack.local_file, None),
            Report(out),
            home=tmp_path / "profiles",
        )
    assert (failed.value.number, failed.value.name) == (12, STEPS[11])
    assert failed.value.expected.startswith("the 307200 bytes A sent (SHA-256 ")
    assert failed.value.got.startswith("17 bytes, SHA-256 ")
    text = out.getvalue()
    used = re.findall(r"^ +[AB] is (\+\d+)$", text, re.MULTILINE)
    assert len(used) == 2
    for phone in used:
        assert f"deleted {phone}'s account" in text
        assert not account_of(local_stack, phone)
    assert "13. " not in text
