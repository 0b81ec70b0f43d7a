"""Calls from the command line: `parley call` with a WAV played and the other side
recorded, answering in `parley chat`, and `parley calls`."""

from __future__ import annotations

import array
import math
import re
import subprocess
import wave
from pathlib import Path

import pytest

from parley.calling.audio import tone_fraction
from tests.e2e.conftest import LocalStack
from tests.e2e.support import WAIT_S, Cli


@pytest.fixture
def cli(local_stack: LocalStack, tmp_path: Path) -> Cli:
    return Cli(local_stack, tmp_path)


def write_tone(path: Path, frequency: int, seconds: float, rate: int = 48_000) -> None:
    samples = array.array(
        "h",
        (
            int(16_000 * math.sin(2 * math.pi * frequency * n / rate))
            for n in range(int(rate * seconds))
        ),
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def acquainted(cli: Cli) -> None:
    alice_phone = cli.signup("alice")
    bob_phone = cli.signup("bob")
    cli.run("alice", "contacts", "add", bob_phone, "Bob")
    cli.run("bob", "contacts", "add", alice_phone, "Alice")


def calling(cli: Cli, *args: str) -> subprocess.Popen[str]:
    """`parley call` started in alice's profile (it runs until the call ends)."""
    return subprocess.Popen(
        cli.command("alice", "call", *args),
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_wav(path: Path) -> tuple[array.array[int], int]:
    """Mono samples (the first channel) and the rate."""
    with wave.open(str(path), "rb") as data:
        rate, channels = data.getframerate(), data.getnchannels()
        frames = data.readframes(data.getnframes())
    samples = array.array("h")
    samples.frombytes(frames)
    return samples[::channels], rate


def test_a_call_placed_from_the_cli_is_answered_in_chat_and_logged(
    cli: Cli, tmp_path: Path
) -> None:
    acquainted(cli)
    greeting, recorded = tmp_path / "greeting.wav", tmp_path / "bob-heard.wav"
    write_tone(greeting, 440, 2.0)

    with cli.chat("bob", "Alice") as chat:
        chat.wait_for(r"^Chat with Alice")
        caller = calling(
            cli, "Bob", "--play", str(greeting), "--record", str(recorded), "--for", "3"
        )
        try:
            chat.wait_for(r"Alice is calling \(voice\): /accept or /decline")
            chat.type("/accept")
            chat.wait_for(r"call: connected")
            chat.wait_for(r"call with Alice ended: normal")
            out, _ = caller.communicate(timeout=WAIT_S)
        finally:
            if caller.poll() is None:
                caller.kill()
        chat.type("/quit")
        assert chat.wait() == 0
    assert caller.returncode == 0, out
    assert "calling Bob…" in out
    assert "connected" in out
    # --for counts from connected (checked every half second)
    assert re.search(r"call ended: normal after 0:0[34]$", out, re.MULTILINE), out

    # the recording is what bob sent: silence (no microphone here), not alice's tone
    samples, rate = read_wav(recorded)
    assert len(samples) > rate  # more than a second was recorded
    assert tone_fraction(samples[-rate:], 440, rate) < 0.05

    assert "→ Bob  voice  answered 0:0" in cli.run("alice", "calls")
    assert "← Alice  voice  answered 0:0" in cli.run("bob", "calls")


def test_a_call_declined_in_chat_ends_declined_on_both_logs(cli: Cli) -> None:
    acquainted(cli)
    with cli.chat("bob", "Alice") as chat:
        chat.wait_for(r"^Chat with Alice")
        caller = calling(cli, "Bob")
        try:
            chat.wait_for(r"Alice is calling")
            chat.type("/decline")
            chat.wait_for(r"ended: declined")
            out, _ = caller.communicate(timeout=WAIT_S)
        finally:
            if caller.poll() is None:
                caller.kill()
        chat.type("/quit")
        chat.wait()
    assert "call ended: declined" in out
    assert "← Alice  voice  declined" in cli.run("bob", "calls")
    assert "→ Bob  voice  declined" in cli.run("alice", "calls")
