"""Lambda execution environments as processes: what the local stack runs its
handlers in.

On Lambda every concurrent invocation of a function runs in an execution
environment of its own: a process with its own module state, started on demand
(a cold start: the runtime imports the handler module), reused while warm for one
invocation at a time, and up to a concurrency limit per function; a timed-out
invocation takes its environment with it. `Environments` does the same here:

- per function a pool of processes (local/runtime.py), each forked from a
  template that has imported the libraries handlers use (local/template.py;
  multiprocessing's fork server, started with the first environment), then set
  up like the stack itself (its environment variables, IAM enforcement with the
  same policies, fault injection) before it imports the handler;
- an invocation takes the most recently used idle environment, else starts a new
  one if the function is below its limit, else waits for one to come free (AWS
  would throttle beyond the account's or the function's concurrency; the local
  limit is about the machine, so it queues instead);
- an invocation past its function's timeout kills its environment's process, and
  one whose process died is dropped; the next invocation starts afresh. A caller
  that stops waiting first (API Gateway's 29 s) has its timeout answer, and the
  invocation runs on in its environment, as on AWS;
- an environment idle for `idle_s` is retired, as Lambda reclaims idle ones.

The limit is `DEFAULT_CONCURRENCY` per function unless PARLEY_LOCAL_CONCURRENCY
(or `python -m local --concurrency N`) says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local import faults, runtime
from local.runtime import Init

if TYPE_CHECKING:
    from local.iam.template import FunctionPolicies
    from parley_server.catalogue import FunctionSpec

__all__ = [
    "CONCURRENCY_ENV",
    "DEFAULT_CONCURRENCY",
    "Environments",
    "Failed",
    "Setup",
]

log = logging.getLogger("local")

CONCURRENCY_ENV = "PARLEY_LOCAL_CONCURRENCY"
# Environments per function: enough for the few busy functions to keep two cores
# busy while each waits on moto; more only adds processes (about 60 MB each).
DEFAULT_CONCURRENCY = 4
# Lambda gives a function's initialisation (the cold start) ten seconds.
INIT_TIMEOUT_S = 10.0
# Lambda reclaims an idle environment after some minutes (it does not say how many).
IDLE_S = 300.0

_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Setup:
    """What every environment is set up with before it imports its handler."""

    region: str = "us-east-1"
    account_id: str = "123456789012"
    concurrency: int = DEFAULT_CONCURRENCY
    idle_s: float = IDLE_S
    # IAM enforcement (local/iam/enforce.py) with these policies, recording there
    policies: FunctionPolicies | None = None
    iam_record: Path | None = None
    log_level: int = logging.INFO
    # added to each environment's variables (on top of this process's)
    environ: dict[str, str] = field(default_factory=dict)


class Failed(Exception):
    """An invocation failed in its environment (FunctionError's kind and message)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


# Environments are forked from a template that has imported what handlers import
# (local/template.py): multiprocessing's fork server, one per process that starts
# environments, started with the first. Its bookkeeping (starting a process,
# reading an exit status, closing one) is not thread-safe, so it all happens on
# one thread; the event loop only watches each process's sentinel.
_TEMPLATE = multiprocessing.get_context("forkserver")
_TEMPLATE.set_forkserver_preload(["local.template"])
_FORKS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="environments")


class _Process:
    """An environment's process, and the socket the stack speaks to it over."""

    def __init__(
        self,
        process: multiprocessing.process.BaseProcess,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._process = process
        self.pid: int = process.pid or 0
        self.reader = reader
        self.writer = writer
        self.returncode: int | None = None
        self._exited: asyncio.Future[int] | None = None

    @classmethod
    async def fork(cls) -> _Process:
        ours, theirs = socket.socketpair()
        try:
            process = _TEMPLATE.Process(target=runtime.run, args=(theirs,), daemon=True)
            await asyncio.get_running_loop().run_in_executor(_FORKS, process.start)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        return cls(process, reader, writer)

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)

    async def wait(self) -> int:
        """The exit code once the process has ended (a signal's is negative)."""
        if self._exited is None:
            self._exited = asyncio.ensure_future(self._wait())
        return await asyncio.shield(self._exited)

    async def _wait(self) -> int:
        loop = asyncio.get_running_loop()
        sentinel = self._process.sentinel
        ended: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ended.done():
                ended.set_result(None)

        loop.add_reader(sentinel, readable)
        try:
            await ended
        finally:
            loop.remove_reader(sentinel)
        self.writer.close()
        code = await loop.run_in_executor(_FORKS, self._reap)
        self.returncode = code
        return code

    def _reap(self) -> int:
        self._process.join()
        code = self._process.exitcode
        self._process.close()
        return 255 if code is None else code


class _Environment:
    """One process running one function's handler."""

    def __init__(self, index: int, process: _Process) -> None:
        self.index = index
        self.process = process
        self.invocations = 0
        self.used_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    async def call(self, header: dict[str, Any], body: bytes = b"") -> tuple[dict[str, Any], bytes]:
        """Send one frame and read the answer (local/runtime.py's frames)."""
        if body:
            header = {**header, "n": len(body)}
        writer = self.process.writer
        writer.write(json.dumps(header).encode() + b"\n" + body)
        await writer.drain()
        return await self.answer()

    async def answer(self) -> tuple[dict[str, Any], bytes]:
        reader = self.process.reader
        line = await reader.readline()
        if not line:
            raise EOFError
        header: dict[str, Any] = json.loads(line)
        size = int(header.get("n", 0))
        body = await reader.readexactly(size) if size else b""
        return header, body

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    async def stop(self) -> None:
        self.kill()
        await self.process.wait()

    def exited(self) -> str:
        code = self.process.returncode
        if code is not None and code < 0:
            return f"Runtime exited with signal {-code}"
        return f"Runtime exited with error: exit status {code}"


class _Pool:
    """One function's environments: started on demand, reused warmest first."""

    def __init__(self, spec: FunctionSpec, setup: Setup, start: Callable[..., Any]) -> None:
        self.spec = spec
        self.setup = setup
        self._start = start
        self.idle: list[_Environment] = []
        self.live: set[_Environment] = set()
        self.starting = 0
        self.started = 0
        self._waiting: deque[asyncio.Future[_Environment | None]] = deque()
        self._reaper: asyncio.TimerHandle | None = None
        # killed environments, until their processes are reaped
        self._dying: set[asyncio.Task[int]] = set()

    def stats(self) -> dict[str, int]:
        waiting = sum(not waiter.done() for waiter in self._waiting)
        return {
            "started": self.started,
            "live": len(self.live),
            "idle": len(self.idle),
            "waiting": waiting,
        }

    @property
    def size(self) -> int:
        return len(self.live) + self.starting

    async def acquire(self) -> _Environment:
        while True:
            if self.idle:
                return self.idle.pop()
            if self.size < self.setup.concurrency:
                return await self._cold_start()
            waiter: asyncio.Future[_Environment | None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._hand_back(waiter.result())
                raise
            if handed is not None:
                return handed
            # None: an environment went away, so there is room to start one

    async def _cold_start(self) -> _Environment:
        index = self.started
        self.started += 1
        self.starting += 1
        task = asyncio.ensure_future(self._start(self.spec, index))
        try:
            env: _Environment = await asyncio.shield(task)
        except asyncio.CancelledError:
            # the invocation gave up, not the start: the environment joins the pool
            task.add_done_callback(self._started_late)
            raise
        except BaseException:
            self.starting -= 1
            self._room()
            raise
        self.starting -= 1
        self.live.add(env)
        return env

    def _started_late(self, task: asyncio.Future[_Environment]) -> None:
        self.starting -= 1
        if task.cancelled() or task.exception() is not None:
            self._room()
            return
        env = task.result()
        self.live.add(env)
        self.release(env)

    def release(self, env: _Environment) -> None:
        """A healthy environment is free again."""
        env.used_at = time.monotonic()
        self._hand_back(env)

    def _hand_back(self, env: _Environment | None) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(env)
                return
        if env is not None:
            self.idle.append(env)
            self._reap_later()

    def drop(self, env: _Environment) -> None:
        """An environment is gone (killed, or its process died)."""
        env.kill()
        self.live.discard(env)
        with contextlib.suppress(ValueError):
            self.idle.remove(env)
        dying = asyncio.ensure_future(env.process.wait())
        self._dying.add(dying)
        dying.add_done_callback(self._dying.discard)
        self._room()

    def _room(self) -> None:
        self._hand_back(None)

    def _reap_later(self) -> None:
        if self._reaper is None and self.setup.idle_s > 0:
            self._reaper = asyncio.get_running_loop().call_later(self.setup.idle_s, self._reap)

    def _reap(self) -> None:
        self._reaper = None
        cutoff = time.monotonic() - self.setup.idle_s
        for env in [env for env in self.idle if env.used_at <= cutoff]:
            log.info("%s: retiring idle environment %d", self.spec.id, env.index)
            self.drop(env)
        if self.idle:
            self._reap_later()

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for waiter in self._waiting:
            waiter.cancel()
        envs = list(self.live)
        self.live.clear()
        self.idle.clear()
        await asyncio.gather(*(env.stop() for env in envs), *self._dying, return_exceptions=True)


class Environments:
    """Every function's pool of environments (see the module docstring)."""

    def __init__(self, setup: Setup | None = None) -> None:
        self.setup = setup or Setup()
        self._pools: dict[str, _Pool] = {}
        self._closed = False
        # invocations in their environments (some may have lost their caller)
        self._running: set[asyncio.Future[tuple[dict[str, Any], bytes]]] = set()

    def pool(self, spec: FunctionSpec) -> _Pool:
        found = self._pools.get(spec.id)
        if found is None:
            found = self._pools[spec.id] = _Pool(spec, self.setup, self._start)
        return found

    def stats(self) -> dict[str, dict[str, int]]:
        """Per function: environments started so far, alive, idle, and invocations
        waiting for one."""
        return {fid: pool.stats() for fid, pool in self._pools.items()}

    async def invoke(
        self, spec: FunctionSpec, payload: bytes, *, timeout_s: float, limit_s: float | None
    ) -> bytes:
        """The handler's JSON-encoded result; Failed otherwise.

        `timeout_s` is the function's own limit, from when its environment has the
        event: past it the environment is killed. `limit_s` is the caller's (API
        Gateway's integration timeout), from now, waiting for an environment and
        its cold start included: past it the caller has its answer (a timeout) and
        the invocation runs on, as on AWS, until it ends or its own limit."""
        if self._closed:
            raise Failed("unhandled", "the local stack is stopping")
        loop = asyncio.get_running_loop()
        deadline = None if limit_s is None else loop.time() + limit_s
        pool = self.pool(spec)
        try:
            async with asyncio.timeout_at(deadline):
                env = await pool.acquire()
        except TimeoutError:
            raise Failed("timeout", _timed_out(limit_s or 0.0)) from None
        run = asyncio.ensure_future(self._run(pool, env, payload, timeout_s))
        self._running.add(run)
        run.add_done_callback(self._finished)
        try:
            async with asyncio.timeout_at(deadline):
                header, body = await asyncio.shield(run)
        except TimeoutError:
            log.error("%s: the caller gave up after %.2f s", spec.id, limit_s or 0.0)
            raise Failed("timeout", _timed_out(limit_s or 0.0)) from None
        error = header.get("error")
        if error is not None:
            raise Failed(str(error), str(header.get("message", "")))
        return body

    def _finished(self, run: asyncio.Future[tuple[dict[str, Any], bytes]]) -> None:
        self._running.discard(run)
        if not run.cancelled():
            run.exception()  # read, so a late failure nobody awaits stays quiet

    async def _run(
        self, pool: _Pool, env: _Environment, payload: bytes, timeout_s: float
    ) -> tuple[dict[str, Any], bytes]:
        """One invocation in `env`, within the function's own timeout."""
        spec = pool.spec
        try:
            async with asyncio.timeout(timeout_s):
                header, body = await env.call({}, payload)
        except TimeoutError:
            log.error("%s timed out after %.2f s", spec.id, timeout_s)
            pool.drop(env)  # Lambda drops the environment of a timed-out invocation
            raise Failed("timeout", _timed_out(timeout_s)) from None
        except (EOFError, ConnectionError, asyncio.IncompleteReadError):
            await env.process.wait()
            log.error("%s: environment %d died: %s", spec.id, env.index, env.exited())
            pool.drop(env)
            raise Failed("unhandled", env.exited()) from None
        except BaseException:
            pool.drop(env)  # cancelled half-way: its answer would confuse the next caller
            raise
        env.invocations += 1
        pool.release(env)
        counts = header.get("faults")
        if counts:
            faults.add_counts(counts)
        return header, body

    async def _start(self, spec: FunctionSpec, index: int) -> _Environment:
        """A new environment for `spec`, its handler imported (a cold start)."""
        started = time.perf_counter()
        python_path = os.pathsep.join(
            p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        environ = {**os.environ, **self.setup.environ, "PYTHONPATH": python_path}
        process = await _Process.fork()
        env = _Environment(index, process)
        init = Init(
            spec=spec,
            region=self.setup.region,
            account_id=self.setup.account_id,
            index=index,
            sys_path=tuple(sys.path),
            log_level=self.setup.log_level,
            policies=self.setup.policies,
            iam_record=self.setup.iam_record,
            environ=tuple(environ.items()),
            cwd=str(_ROOT),
        )
        try:
            async with asyncio.timeout(INIT_TIMEOUT_S):
                header, _ = await env.call({}, pickle.dumps(init))
        except TimeoutError:
            await env.stop()
            raise Failed("import", f"initialisation took over {INIT_TIMEOUT_S:.0f} s") from None
        except (EOFError, ConnectionError, asyncio.IncompleteReadError):
            await env.process.wait()
            raise Failed("import", env.exited()) from None
        except BaseException:
            await env.stop()
            raise
        if not header.get("ready"):
            await env.stop()
            raise Failed("import", str(header.get("message", "")))
        log.info(
            "%s: cold start of environment %d (pid %d) in %.0f ms",
            spec.id,
            index,
            process.pid,
            (time.perf_counter() - started) * 1000,
        )
        return env

    async def close(self) -> None:
        """Stop every environment (an invocation still running fails)."""
        self._closed = True
        await asyncio.gather(*(pool.close() for pool in self._pools.values()))
        await asyncio.gather(*self._running, return_exceptions=True)


def _timed_out(seconds: float) -> str:
    return f"Task timed out after {seconds:.2f} seconds"
