"""moto in a process of its own: the local stack's AWS account.

`python -m local` runs the gateway's event loop, and every handler's AWS calls
went to moto's server in threads of that same process: each call waited for the
loop's share of one interpreter, and the loop for the calls' (docs/ARCHITECTURE.md,
"The local stack"). This process is moto's alone. It runs

- moto's server (local/resources.py's MotoServer, with local/moto_speedups.py),
  and in it every resource the stack makes (resources.provision);
- what must read moto's backends directly, served beside moto's API under
  /_local/ (no AWS API uses that path: bucket names hold no underscore):

      GET  /_local/changes   {"changes": n}: requests so far that may have changed
                             something (the state is saved only when it moved)
      POST /_local/capture   {"objects_dir": path} -> local/state.py's MotoState.capture
      POST /_local/restore   {"part": ..., "objects_dir": path} -> MotoState.restore
      GET  /_local/sms       the SMS sink's records (local/sinks.py)
      GET  /_local/push      the push sink's records

  and the sinks' echo of each new SMS or push to the console.

`MotoProcess.start` runs it and waits until it is ready: it writes one line of
JSON (its endpoint and the resources' settings) to a pipe. It stops when its
stdin closes, which `MotoProcess.stop` does after the stack's last save, and
which also happens when the stack process dies however it dies: moto never
outlives the stack. It ignores SIGINT and SIGTERM, so that a Ctrl-C, which the
terminal sends to both processes, leaves moto up for the stack's last save.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import functools
import http.client
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from parley_server.catalogue import Setting

if TYPE_CHECKING:
    from local.resources import LocalAws

__all__ = ["MotoProcess", "MotoProcessFailed", "local_aws", "main", "settings_of"]

log = logging.getLogger("local")

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 60.0  # a state's capture or restore has none: it takes what its size takes
ROOT = Path(__file__).resolve().parents[1]  # where `local` is importable from
ECHO_EVERY_S = 0.5  # how soon a new SMS or push shows on the console


class MotoProcessFailed(RuntimeError):
    """moto's process did not start, or answered a call with an error."""


# -- in the stack's process ------------------------------------------------------------


class MotoProcess:
    """The stack's handle on moto's process: its endpoint, the calls above, stop."""

    def __init__(self, process: subprocess.Popen[bytes], endpoint_url: str) -> None:
        self.process = process
        self.endpoint_url = endpoint_url
        parts = urlsplit(endpoint_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80

    @classmethod
    def start(
        cls, host: str, region: str, *, quiet: bool = False, timeout_s: float = START_TIMEOUT_S
    ) -> tuple[MotoProcess, dict[str, Any]]:
        """Start moto's process on `host`; the handle, and what it made (ready()'s JSON)."""
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(  # noqa: S603 (this interpreter, this module)
                [
                    sys.executable,
                    "-m",
                    "local.moto_process",
                    "--host",
                    host,
                    "--region",
                    region,
                    "--ready-fd",
                    str(write_end),
                    *(["--quiet"] if quiet else []),
                ],
                stdin=subprocess.PIPE,
                pass_fds=(write_end,),
                cwd=ROOT,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        try:
            ready = _read_ready(read_end, process, timeout_s)
        except BaseException:
            # nothing to save yet, and it reads its stdin only once it is ready
            process.kill()
            process.wait()
            raise
        finally:
            os.close(read_end)
        return cls(process, ready["endpoint_url"]), ready

    def stop(self) -> None:
        """Close its stdin (it stops its server and exits); killed if it lingers."""
        _end(self.process)

    # -- the calls --------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        timeout_s: float | None = CALL_TIMEOUT_S,
    ) -> Any:
        # a connection per call: the state's saves and the sinks' readers call from
        # threads of their own, and each call is rare
        connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            connection.request(method, path, body=payload, headers=headers)
            answer = connection.getresponse()
            raw = answer.read()
        finally:
            connection.close()
        if answer.status != 200:
            raise MotoProcessFailed(
                f"moto's process answered {method} {path} with {answer.status}: "
                + raw.decode(errors="replace")
            )
        return json.loads(raw)

    def changes(self) -> int:
        return int(self._call("GET", "/_local/changes")["changes"])

    def capture(self, objects_dir: Path) -> dict[str, Any]:
        # absolute: the two processes need not share a working directory
        request = {"objects_dir": str(objects_dir.resolve())}
        captured: dict[str, Any] = self._call("POST", "/_local/capture", request, None)
        return captured

    def restore(self, part: Mapping[str, Any], objects_dir: Path) -> None:
        request = {"part": part, "objects_dir": str(objects_dir.resolve())}
        self._call("POST", "/_local/restore", request, None)

    def sms(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self._call("GET", "/_local/sms")
        return records

    def push(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self._call("GET", "/_local/push")
        return records


def _read_ready(fd: int, process: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any]:
    """The child's one line of JSON on `fd`, or MotoProcessFailed if it exits or
    takes longer than timeout_s."""
    deadline = time.monotonic() + timeout_s
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise MotoProcessFailed(f"moto's process was not ready within {timeout_s:.0f} s")
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:  # it closed the pipe without a word: it has failed
            code = process.wait()
            raise MotoProcessFailed(
                f"moto's process exited ({code}) before it was ready; its error is above"
            )
        line += chunk
    ready: dict[str, Any] = json.loads(line)
    return ready


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def settings_of(ready: Mapping[str, Any]) -> dict[Setting, str]:
    """The settings ready()'s JSON names, by Setting."""
    return {Setting(name): value for name, value in ready["settings"].items()}


def local_aws(moto: MotoProcess, ready: Mapping[str, Any], region: str) -> LocalAws:
    """The resources moto's process made (ready()'s JSON), served by `moto`."""
    from local.resources import LocalAws

    jobs_url, jobs_arn = ready["fanout_queue"]
    return LocalAws(
        endpoint_url=moto.endpoint_url,
        region=region,
        settings=settings_of(ready),
        push_apps=dict(ready["push_apps"]),
        fanout_queue=(jobs_url, jobs_arn),
        server=moto,
    )


# -- in moto's process -------------------------------------------------------------------


class _Control:
    """The /_local/ routes, in front of moto's own app."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state  # local.state.MotoState, with its sinks

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_local/"):
            return self.app(environ, start_response)
        try:
            status, answer = self._answer(environ, path)
        except Exception as exc:  # said to the caller, which raises it in the stack
            log.exception("moto's process failed to answer %s", path)
            status, answer = "500 Internal Server Error", {"message": repr(exc)}
        body = json.dumps(answer).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    def _answer(self, environ: dict[str, Any], path: str) -> tuple[str, Any]:
        method = environ.get("REQUEST_METHOD", "")
        route = (method, path)
        if route == ("GET", "/_local/changes"):
            return "200 OK", {"changes": self.state.changes()}
        if route == ("GET", "/_local/sms"):
            return "200 OK", self.state.sinks.sms()
        if route == ("GET", "/_local/push"):
            return "200 OK", self.state.sinks.push()
        if route == ("POST", "/_local/capture"):
            request = _json_body(environ)
            return "200 OK", self.state.capture(Path(request["objects_dir"]))
        if route == ("POST", "/_local/restore"):
            request = _json_body(environ)
            self.state.restore(request["part"], Path(request["objects_dir"]))
            return "200 OK", {}
        return "404 Not Found", {"message": f"no route {method} {path}"}


def _json_body(environ: dict[str, Any]) -> Any:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return json.loads(environ["wsgi.input"].read(length))


def _echo_forever(sinks: Any) -> None:
    while True:
        try:
            sinks.poll()
        except Exception:
            log.exception("reading the SNS sinks failed")
        time.sleep(ECHO_EVERY_S)


def _wait_for_stdin_to_close() -> None:
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(65536):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.moto_process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--region", required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    # the stack stops it (stdin closes) once its last save is done
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    faulthandler.register(signal.SIGQUIT, all_threads=True)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s (moto): %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)

    from local import moto_speedups
    from local.resources import ACCOUNT_ID, provision, start_moto
    from local.sinks import SnsSinks
    from local.state import MotoState

    moto_speedups.apply()
    server, endpoint_url = start_moto(args.host)
    try:
        aws = provision(endpoint_url, args.region)
        # the echo goes to the stack's console (this process's stdout is the stack's)
        sinks = SnsSinks(
            account_id=ACCOUNT_ID,
            region=aws.region,
            push_apps=aws.push_apps,
            echo=functools.partial(print, flush=True),
        )
        state = MotoState.of(aws, ACCOUNT_ID, sinks)
        state.watch(server)
        server.app = _Control(server.app, state)
        threading.Thread(target=_echo_forever, args=(sinks,), name="sinks", daemon=True).start()
        ready = {
            "endpoint_url": endpoint_url,
            "settings": {setting.value: value for setting, value in aws.settings.items()},
            "push_apps": aws.push_apps,
            "fanout_queue": list(aws.fanout_queue),
        }
        with os.fdopen(args.ready_fd, "w") as out:
            out.write(json.dumps(ready) + "\n")
        _wait_for_stdin_to_close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
