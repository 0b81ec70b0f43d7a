"""`make serve` / `python -m local`: moto, the resources, the gateway, the
endpoints file, and a clean stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.environments import Setup
    from local.event_sources import SqsEventSource
    from local.http_api import HttpCors
    from local.iam.template import FunctionPolicies
    from local.lambdas import Invoker
    from local.moto_process import MotoProcess
    from local.resources import LocalAws
    from local.state import LocalState

from local.environments import CONCURRENCY_ENV, DEFAULT_CONCURRENCY
from local.state import StateRefused, open_state, reset_command, restore
from local.state import add_arguments as _state_args

__all__ = ["main", "parse_args"]

log = logging.getLogger("local")

DEFAULT_PORT = 8787
DEFAULT_LOCAL_FILE = "~/.parley/local.json"
STAGE = "local"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description="Run Parley on this machine: HTTP + WebSocket APIs over moto.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port",
        type=int,
        # argparse converts (and reports) a string default the same way as a flag
        default=os.environ.get("PARLEY_PORT") or str(DEFAULT_PORT),
        help="port for both APIs; 0 picks a free one (env PARLEY_PORT, default 8787)",
    )
    parser.add_argument(
        "--local-file",
        default=os.environ.get("PARLEY_LOCAL_FILE") or DEFAULT_LOCAL_FILE,
        help="where to write the endpoints for the client (env PARLEY_LOCAL_FILE)",
    )
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=os.environ.get("PARLEY_WS_IDLE_TIMEOUT") or "600",
        help="seconds a WebSocket may be idle (env PARLEY_WS_IDLE_TIMEOUT, default 600)",
    )
    parser.add_argument(
        "--max-connection-duration",
        type=float,
        default=os.environ.get("PARLEY_WS_MAX_DURATION") or "7200",
        help="seconds a WebSocket may live (env PARLEY_WS_MAX_DURATION, default 7200)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=os.environ.get(CONCURRENCY_ENV) or str(DEFAULT_CONCURRENCY),
        help="execution environments (processes) per function at most "
        f"(env {CONCURRENCY_ENV}, default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument(
        "--no-iam",
        dest="iam",
        action="store_false",
        default=os.environ.get("PARLEY_LOCAL_IAM", "on").lower() not in ("off", "0", "false"),
        help="do not hold each function to its IAM policy (env PARLEY_LOCAL_IAM=off)",
    )
    _state_args(parser)
    args = parser.parse_args(argv)
    if args.idle_timeout <= 0 or args.max_connection_duration <= 0:
        parser.error("timeouts must be positive")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


def _write_endpoints(path: Path, endpoints: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # write-then-rename: a reader never sees half a file
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(endpoints, indent=2) + "\n")
    partial.replace(path)


@dataclass
class _Running:
    """What main() starts before the event loop, and stops after it."""

    sock: socket.socket
    aws: LocalAws
    # moto's own process (local/moto_process.py): the SNS sinks and the state's moto side
    moto: MotoProcess
    # how each function's execution environments are set up (local/environments.py)
    setup: Setup
    local_file: Path
    state: LocalState | None = None
    # names this run's data for clients (parley.service): the state's, or a new one
    stack_id: str = field(default_factory=lambda: secrets.token_hex(8))


def _start_aws(args: argparse.Namespace) -> _Running | None:
    from local.gateway import bind
    from local.moto_process import MotoProcess, local_aws
    from local.resources import environment
    from parley_server.config import reset_config
    from parley_server.store.aws import reset_clients

    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return None
    try:
        moto, ready = MotoProcess.start(args.host, args.region, quiet=args.quiet)
    except BaseException:
        sock.close()
        raise
    aws = local_aws(moto, ready, args.region)
    ws_endpoint = f"http://{args.host}:{sock.getsockname()[1]}/{STAGE}"
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(environment(aws, ws_endpoint=ws_endpoint))
    setup = _environment_setup(args, aws)
    # anything cached before the environment was complete is stale
    reset_config()
    reset_clients()
    return _Running(sock, aws, moto, setup, Path(args.local_file).expanduser())


def _environment_setup(args: argparse.Namespace, aws: LocalAws) -> Setup:
    """How the functions' environments are set up: with IAM enforced when asked."""
    from local.environments import Setup
    from local.resources import ACCOUNT_ID

    setup = Setup(
        region=args.region,
        account_id=ACCOUNT_ID,
        concurrency=args.concurrency,
        log_level=logging.WARNING if args.quiet else logging.INFO,
    )
    if not args.iam:
        return setup
    from dataclasses import replace

    from local.iam import enforce

    policies = _enforce_iam(aws)
    return replace(setup, policies=policies, iam_record=enforce.RECORD.path)


def _enforce_iam(aws: LocalAws) -> FunctionPolicies:
    """Hold every function to its synthesized IAM policy (local/iam/policies.json,
    or the file PARLEY_IAM_POLICIES names), recording to PARLEY_IAM_RECORD when
    set (the tests read it after the stack stops). In this process (the calls the
    stack makes as a function: the SQS poller's), and in every environment, which
    records to the same file."""
    from local.iam import enforce
    from local.iam.template import SNAPSHOT, load_snapshot, resolve
    from local.resources import ACCOUNT_ID

    snapshot = load_snapshot(Path(os.environ.get("PARLEY_IAM_POLICIES") or SNAPSHOT))
    policies = resolve(snapshot, aws.settings, region=aws.region, account_id=ACCOUNT_ID)
    enforce.install()
    enforce.configure(policies)
    record = os.environ.get("PARLEY_IAM_RECORD")
    if record:
        enforce.RECORD.path = Path(record)
    return policies


def _http_cors() -> HttpCors:
    from local.http_api import HttpCors
    from parley_server.catalogue import HTTP_ROUTES
    from stacks.settings import ParleySettings

    # What stacks/http_api.py gives the HTTP API (that module imports the CDK,
    # so the values are repeated here; tests/e2e/test_gateway_drift.py holds
    # them to the synthesized template).
    return HttpCors(
        origins=ParleySettings().cors_origins,
        methods=tuple(sorted({route.split(" ", 1)[0] for route in HTTP_ROUTES})),
        headers=("authorization", "content-type"),
        expose=("retry-after",),
        max_age_s=3600,
    )


async def _serve(args: argparse.Namespace, running: _Running, started: float) -> None:
    from local.environments import Environments
    from local.gateway import Gateway, GatewayOptions
    from local.lambdas import Invoker
    from local.resources import ACCOUNT_ID
    from local.websocket import WsLimits

    options = GatewayOptions(
        host=args.host,
        port=running.sock.getsockname()[1],
        stage=STAGE,
        region=args.region,
        account_id=ACCOUNT_ID,
        http_cors=_http_cors(),
        ws=WsLimits(
            idle_timeout_s=args.idle_timeout, max_connection_s=args.max_connection_duration
        ),
    )
    invoker = Invoker(Environments(running.setup), region=args.region, account_id=ACCOUNT_ID)
    if running.state is not None:
        running.state.start()
    gateway = Gateway(invoker, options, sinks=running.moto)
    await gateway.start(running.sock)
    fanout = _fanout_source(invoker, running.aws)
    fanout.start()
    # Ctrl-C and SIGTERM must stop cleanly from the moment the endpoints file
    # says the stack is ready: a supervisor may signal as soon as it sees it.
    stopped = _stop_on_signals()
    try:
        elapsed = time.perf_counter() - started
        endpoints = {
            "http_url": gateway.http_url,
            "ws_url": gateway.ws_url,
            "sms_url": gateway.sms_url,
            "push_url": gateway.push_url,
            "region": args.region,
            "aws_endpoint_url": running.aws.endpoint_url,
            "pid": os.getpid(),
            # moto's own process (local/moto_process.py): `kill -QUIT` prints its threads
            "aws_pid": running.moto.process.pid,
            "stack_id": running.stack_id,
        }
        _write_endpoints(running.local_file, endpoints)
        print(
            f"Parley is running locally (ready in {elapsed:.2f} s)\n"
            f"  HTTP API        {gateway.http_url}\n"
            f"  WebSocket API   {gateway.ws_url}\n"
            f"  SMS sink        {gateway.sms_url}\n"
            f"  push sink       {gateway.push_url}\n"
            f"  AWS (moto)      {running.aws.endpoint_url}\n"
            f"  endpoints file  {running.local_file}\n"
            "Ctrl-C stops it.",
            flush=True,
        )
        await stopped.wait()
        print("stopping…", flush=True)
    finally:
        # each step's time in the log: a stop that lingers shows where
        for step, stopping in (
            ("the fan-out queue's poller", fanout.stop),
            ("the gateway", gateway.stop),
            ("the environments", invoker.close),
            # the last save, once nothing changes any more
            ("the state", running.state.stop if running.state is not None else None),
        ):
            if stopping is not None:
                began = time.perf_counter()
                await stopping()
                log.info("stopped %s in %.2f s", step, time.perf_counter() - began)


def _fanout_source(invoker: Invoker, aws: LocalAws) -> SqsEventSource:
    """GroupFanout fed from the fan-out queue, as the CDK stack's event source does."""
    from local.event_sources import SqsEventSource
    from local.resources import client
    from stacks.fanout_spec import FANOUT_QUEUE

    url, arn = aws.fanout_queue
    return SqsEventSource(
        invoker,
        client(aws, "sqs"),
        function_id="GroupFanout",
        queue_url=url,
        queue_arn=arn,
        region=aws.region,
        batch_size=FANOUT_QUEUE.batch_size,
        max_concurrency=FANOUT_QUEUE.max_concurrency,
    )


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (handlers installed now, on the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still works
            loop.add_signal_handler(sig, stop.set)
    return stop


def main(argv: Sequence[str] | None = None, *, started: float | None = None) -> int:
    started = time.perf_counter() if started is None else started
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # boto3's INFO lines (credentials found, …) say nothing useful here
    logging.getLogger("botocore").setLevel(logging.WARNING)
    # SIGQUIT prints every thread's stack to stderr (a stop that hangs shows where it
    # waits; local/testing.py sends it before killing a stack that will not stop)
    faulthandler.register(signal.SIGQUIT, all_threads=True)
    if args.command == "reset":
        return reset_command(args)
    state: LocalState | None = None
    if not args.ephemeral:
        try:
            state = open_state(args)
        except StateRefused as refused:
            print(refused, file=sys.stderr)
            return 1
    running = _start_aws(args)
    if running is None:
        if state is not None:
            state.close()
        return 1
    if state is not None:
        running.state = state
        running.stack_id = state.stack_id
        try:
            restore(state, running.aws, running.moto)
        except StateRefused as refused:
            print(refused, file=sys.stderr)
            running.aws.stop()
            state.close()
            return 1
    try:
        asyncio.run(_serve(args, running, started))
    except KeyboardInterrupt:
        return 130
    finally:
        with contextlib.suppress(FileNotFoundError):
            running.local_file.unlink()
        began = time.perf_counter()
        running.aws.stop()
        log.info("stopped moto in %.2f s", time.perf_counter() - began)
        if state is not None:
            state.close()
    return 0
