"""`make demo` end to end: the story runs through against the local stack."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.e2e.conftest import LocalStack

WAIT_S = 120.0  # a guard against hanging, not a measurement


def test_the_demo_tells_the_whole_story_against_a_running_stack(local_stack: LocalStack) -> None:
    env = dict(os.environ, PARLEY_LOCAL_FILE=str(local_stack.local_file), NO_COLOR="1")
    done = subprocess.run(
        [sys.executable, "-m", "parley.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert f"Using the local stack already running at {local_stack.http_url}" in out
    for chapter in (
        "1. Two people sign up",
        "2. First contact (X3DH)",
        "3. Messages both ways",
        "4. Bob goes offline",
        "5. Bob comes back",
        "6. Are they really talking to each other? Safety numbers",
    ):
        assert chapter in out
    # ticks progress for the first message, in order
    first = [line for line in out.splitlines() if "you: Hi Bob! It's Alice." in line]
    # her first message is a request to Bob: no delivered tick until he accepts
    assert [line.split("   ")[-1] for line in first] == [
        "✓ (on the server)",
        "✓✓ (read)",
    ]
    assert "message request" in out
    assert "bytes of ciphertext" in out
    assert "Lunch tomorrow?" not in out.split("What the server stores")[1].split("5. Bob")[0]
    assert "Same 60 digits on both phones" in out
