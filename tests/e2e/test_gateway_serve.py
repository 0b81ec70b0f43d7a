"""`python -m local` as a user runs it: what it prints, the endpoints file, and
a clean stop on Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from local.state import read_state
from local.testing import (
    LocalStack,
    StackDidNotStart,
    running_local_stack,
    stack_environment,
    stop,
)
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
        printed = stack.output()
        assert "stopping" in printed
        # each step of the stop says how long it took (a stop that lingers shows where)
        for step in ("the gateway", "the environments", "the state", "moto"):
            assert re.search(rf"stopped {step} in \d+\.\d\d s", printed), step


def test_ctrl_c_in_a_terminal_leaves_moto_up_for_the_last_save(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals the stack and moto's process alike: moto waits
    until the stack has saved, then goes with it."""
    with start_local_stack(tmp_path, new_session=True) as stack:
        users = stack.moto("dynamodb")
        (table,) = [t for t in users.list_tables()["TableNames"] if t.endswith("-users")]
        users.put_item(TableName=table, Item={"pk": {"S": "USER#ctrl-c"}, "sk": {"S": "PROFILE"}})
        os.killpg(stack.process.pid, signal.SIGINT)
        assert stack.process.wait(15) == 0
        printed = stack.output()
        # the stop's last save asks moto what changed (and saves if anything did): a
        # moto gone with the signal fails it, and the stack says so
        assert "stopped the state" in printed, printed[-3000:]
        assert "could not save" not in printed, printed[-3000:]
        saved = read_state(tmp_path / "local-state")
        assert saved is not None
        assert {"pk": {"S": "USER#ctrl-c"}, "sk": {"S": "PROFILE"}} in saved["tables"]["Users"]
        assert re.search(r"stopped moto in \d+\.\d\d s", printed), printed[-3000:]
        with pytest.raises(requests.ConnectionError):
            requests.get(stack.aws_endpoint_url, timeout=5)


def test_sigquit_prints_every_threads_stack_and_the_stack_serves_on(tmp_path: Path) -> None:
    with start_local_stack(tmp_path) as stack:
        stack.process.send_signal(signal.SIGQUIT)
        printed = _threads_printed(stack, after=0, naming=("serve.py",))
        assert requests.get(stack.http_url + "/v1/openapi.json", timeout=15).status_code == 200
        assert stack.process.poll() is None
        # moto's process, named in the endpoints file, does the same
        os.kill(json.loads(stack.local_file.read_text())["aws_pid"], signal.SIGQUIT)
        # its main thread, and its server's threads (which the stack process has none of)
        _threads_printed(stack, after=len(printed), naming=("_wait_for_stdin_to_close", "waitress"))
        assert stack.moto("dynamodb").list_tables()["TableNames"]


def _threads_printed(stack: LocalStack, after: int, naming: tuple[str, ...]) -> str:
    """The stack's output once, past `after` characters, faulthandler has written
    more than one thread's stack, and they name everything in `naming`."""
    deadline = time.monotonic() + 15
    while True:
        printed = stack.output()
        new = printed[after:]
        # faulthandler writes thread after thread: wait for more than the first
        if new.count("most recent call first") >= 2 and all(name in new for name in naming):
            return printed
        assert time.monotonic() < deadline, new[-3000:]
        time.sleep(0.05)


def test_stop_has_a_stack_that_will_not_stop_print_its_threads_then_kills_it(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    lingering = (
        "import faulthandler, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "faulthandler.register(signal.SIGQUIT, all_threads=True)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", lingering], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 15
    while "ready" not in log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert stop(process, timeout_s=0.5) == -signal.SIGKILL
    assert "most recent call first" in log.read_text()


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
