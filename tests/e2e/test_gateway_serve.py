"""`python -m local` as a user runs it: what it prints, the endpoints file, and
a clean stop on Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from local.testing import StackDidNotStart, running_local_stack, stack_environment
from tests.e2e.conftest import ROOT, start_local_stack


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_prints_its_urls_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    with start_local_stack(tmp_path) as stack:
        printed = stack.output()
        for url in (stack.http_url, stack.ws_url, stack.sms_url, stack.push_url):
            assert url in printed
        assert str(stack.local_file) in printed
        ready = re.search(r"ready in (\d+\.\d+) s", printed)
        assert ready is not None
        stack.process.send_signal(sig)
        assert stack.process.wait(15) == 0
        assert not stack.local_file.exists()
        assert "stopping" in stack.output()


def test_a_busy_port_is_a_clear_error_and_no_endpoints_file(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "local", "--port", str(port)],
            cwd=ROOT,
            env=stack_environment(tmp_path / "local.json", {"PYTHONUNBUFFERED": "1"}),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "local.json").exists()


def test_a_stack_that_cannot_start_is_reported_with_what_it_printed(tmp_path: Path) -> None:
    with (
        pytest.raises(StackDidNotStart, match="unrecognized arguments: --no-such-option"),
        running_local_stack(tmp_path, "--no-such-option"),
    ):
        pass
    assert not (tmp_path / "local.json").exists()
