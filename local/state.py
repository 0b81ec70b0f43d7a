"""The local stack's state on disk, kept across restarts.

A state directory (default ~/.parley/local-state/, PARLEY_LOCAL_STATE or
--state-dir to move it) holds:

    state.json       every table's items, the media objects' metadata, the signing
                     secret, the SNS platform endpoints, the fan-out queues'
                     messages and the sinks' history (format below)
    objects/<sha256> each media object's bytes, by content
    lock             held (fcntl.flock) by the stack using the directory; its pid

state.json is written whole, to a temporary file that is fsynced and then renamed
over the old one (objects are written the same way before the state that names
them), so a crash leaves either the previous state or the new one, never half of
one. It is written at a clean stop and, while the stack runs, at most every
FLUSH_INTERVAL_S seconds when something changed: a crash (kill -9, power loss)
loses at most the last FLUSH_INTERVAL_S seconds plus one write (a state so big that
one save takes over SAVE_SHARE of that interval is saved less often).

Format 1 (the `format` field; any other value is refused):

    {"format": 1, "stack_id": "<hex>", "created_at": <unix s>, "saved_at": <unix s>,
     "generation": <writes so far>,
     "tables": {"<table id, e.g. Mailbox>": [<item as DynamoDB JSON: {"attr":
                {"S" | "N" | "B" | "BOOL" | "NULL" | "SS" | "NS" | "BS" | "M" | "L":
                value}}, binary values base64, as the DynamoDB API sends them>]},
     "objects": [{"key", "sha256", "size", "metadata", "checksum_algorithm",
                  "checksum_value"}],
     "signing_secret": "<the secret string>",
     "push_endpoints": [{"platform", "arn", "id", "token", "custom_user_data",
                         "attributes"}],
     "queues": {"jobs" | "dead": [{"body", "group_id", "deduplication_id"}]},
     "sinks": {"sms": [...], "push": [...]}}

The stack_id names one state: a new one (first start, --fresh, reset) has a new
id, which the endpoints file carries so clients can tell that the service they
signed up with has been forgotten.

moto's backends are read directly, in moto's own process (MotoState, served by
local/moto_process.py): through boto3 a snapshot of a busy stack costs far more.
Items are restored into moto's tables exactly as DynamoDB JSON (every type,
binary and sets included), minus those whose TTL attribute is in the past
(DynamoDB would delete them).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from parley_server.catalogue import Setting
from parley_server.store.schema import TABLES, TableSpec

if TYPE_CHECKING:
    from local.resources import LocalAws
    from local.sinks import SnsSinks

__all__ = [
    "DEFAULT_STATE_DIR",
    "FLUSH_INTERVAL_S",
    "FORMAT",
    "LocalState",
    "Moto",
    "MotoState",
    "StateRefused",
    "Summary",
    "item_from_json",
    "item_to_json",
    "read_state",
    "reset",
    "state_dir",
    "sweep_expired",
]

log = logging.getLogger("local.state")

FORMAT = 1
DEFAULT_STATE_DIR = "~/.parley/local-state"
STATE_FILE = "state.json"
OBJECTS_DIR = "objects"
LOCK_FILE = "lock"
FLUSH_INTERVAL_S = 2.0
# At most this share of the time goes to saving (only states of tens of thousands of
# items, as a long test session makes, take over 0.2 s to save and wait longer).
SAVE_SHARE = 0.1
_TABLE_IDS = {spec.id for spec in TABLES}
# Requests moto serves that change nothing worth saving (JSON protocols name the
# action in X-Amz-Target; S3 reads are GET/HEAD).
_READS = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "Receive")


class StateRefused(Exception):
    """The state directory cannot be used (locked by another stack, unreadable);
    the message says why and what to do."""


def state_dir(option: str | None) -> Path:
    """--state-dir, else PARLEY_LOCAL_STATE, else ~/.parley/local-state."""
    chosen = option or os.environ.get("PARLEY_LOCAL_STATE") or DEFAULT_STATE_DIR
    return Path(chosen).expanduser()


# -- files -----------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system can
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync it, rename it over `path`."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def read_state(directory: Path) -> dict[str, Any] | None:
    """The saved state in `directory` (None when there is none); StateRefused when
    it cannot be loaded."""
    path = directory / STATE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unloadable(directory, f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _unloadable(directory, f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _unloadable(directory, f"{path} is not a state file")
    if data.get("format") != FORMAT:
        raise _unloadable(
            directory,
            f"{path} has format {data.get('format')!r}; this version reads format {FORMAT}",
        )
    problem = _check(data, directory)
    if problem:
        raise _unloadable(directory, f"{path}: {problem}")
    return data


def _check(data: dict[str, Any], directory: Path) -> str | None:
    """What is wrong with a parsed state, or None."""
    if not isinstance(data.get("stack_id"), str) or not isinstance(data.get("tables"), dict):
        return "stack_id or tables missing"
    for table, items in data["tables"].items():
        if table not in _TABLE_IDS:
            return f"unknown table {table!r}"
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return f"table {table!r} is not a list of items"
    for obj in data.get("objects", []):
        if not isinstance(obj, dict) or not isinstance(obj.get("sha256"), str):
            return "an object has no sha256"
        if not (directory / OBJECTS_DIR / obj["sha256"]).is_file():
            return f"the bytes of object {obj.get('key')!r} are missing"
    if not isinstance(data.get("signing_secret"), str):
        return "no signing secret"
    for part in ("sinks", "queues"):
        if not isinstance(data.get(part, {}), dict):
            return f"{part} is not an object"
    if not isinstance(data.get("push_endpoints", []), list):
        return "push_endpoints is not a list"
    return None


def _unloadable(directory: Path, why: str) -> StateRefused:
    return StateRefused(
        f"cannot load the local state: {why}.\n"
        f"To start empty (this discards that state): python -m local --fresh "
        f"--state-dir {directory}\n"
        "or keep it for later: move the directory aside, or use another --state-dir."
    )


def reset(directory: Path) -> None:
    """Delete everything the stack keeps in `directory` (refused while a stack runs on it)."""
    lock = _Lock(directory)
    lock.acquire()
    try:
        _clear(directory)
    finally:
        lock.release()


def _clear(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (directory / STATE_FILE).unlink()
    shutil.rmtree(directory / OBJECTS_DIR, ignore_errors=True)
    for stray in directory.glob(f".{STATE_FILE}.*.tmp"):
        stray.unlink(missing_ok=True)


class _Lock:
    """An exclusive flock on directory/lock, naming the holder's pid."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StateRefused(f"cannot lock {self.path}: {exc.strerror}") from exc
            raise StateRefused(
                f"the local state {self.directory} is in use by another local stack "
                f"(pid {holder}).\nStop that one, or give this one a state of its own: "
                "python -m local --state-dir <another directory>"
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


# -- what is saved -----------------------------------------------------------------------


def sweep_expired(
    tables: Mapping[str, list[dict[str, Any]]], now: float, specs: Iterable[TableSpec] = TABLES
) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """The items DynamoDB would still keep at `now` (those whose TTL attribute is
    not in the past), and how many were swept."""
    ttl = {spec.id: spec.ttl_attribute for spec in specs}
    kept: dict[str, list[dict[str, Any]]] = {}
    swept = 0
    for table, items in tables.items():
        attribute = ttl.get(table)
        if attribute is None:
            kept[table] = list(items)
            continue
        kept[table] = []
        for item in items:
            expires = item.get(attribute)
            if _expired(expires, now):
                swept += 1
            else:
                kept[table].append(item)
    return kept, swept


def _expired(value: Any, now: float) -> bool:
    # DynamoDB's TTL reads only a Number holding epoch seconds; anything else never expires
    if not isinstance(value, dict) or "N" not in value:
        return False
    try:
        return float(value["N"]) < now
    except (TypeError, ValueError):
        return False


@dataclass
class Summary:
    """What a restore put back."""

    accounts: int = 0
    envelopes: int = 0
    objects: int = 0
    items: int = 0
    swept: int = 0
    seconds: float = 0.0

    def line(self, directory: Path) -> str:
        return (
            f"Restored local state from {directory}: {self.accounts} accounts, "
            f"{self.envelopes} envelopes waiting in mailboxes, {self.objects} media objects "
            f"({self.items} items in all, {self.swept} expired ones swept) "
            f"in {self.seconds:.2f} s"
        )


def _settle(read: Callable[[], Any]) -> Any:
    """`read` again while moto's request threads change what it iterates."""
    for _ in range(20):
        try:
            return read()
        except RuntimeError:  # "dictionary changed size during iteration"
            time.sleep(0.001)
    return read()


def _queue_names(aws: LocalAws) -> dict[str, str]:
    """The fan-out queue's name and its dead-letter queue's, as the state names them."""
    jobs = aws.fanout_queue[0].rsplit("/", 1)[-1]
    return {"jobs": jobs, "dead": jobs.replace("-fanout.fifo", "-fanout-dead.fifo")}


class Moto(Protocol):
    """moto, as the state reaches it: local/moto_process.py's MotoProcess from the
    stack's process, or a MotoState in moto's own."""

    def changes(self) -> int:
        """How many requests so far may have changed something."""
        ...

    def capture(self, objects_dir: Path) -> dict[str, Any]:
        """MotoState.capture."""
        ...

    def restore(self, part: Mapping[str, Any], objects_dir: Path) -> None:
        """MotoState.restore."""
        ...


@dataclass
class MotoState:
    """The part of the state that lives in moto's backends, read and put back
    directly: in moto's own process (local/moto_process.py), as through boto3 a
    snapshot of a busy stack costs far more. The signing secret and the queues'
    messages go back through the API (LocalState does that)."""

    account_id: str
    region: str
    tables: dict[str, str]  # table id -> name
    bucket: str
    push_apps: dict[str, str]  # platform -> platform application ARN
    queues: dict[str, str]  # "jobs" / "dead" -> queue name
    sinks: SnsSinks | None = None
    # counted by `watch`: requests moto served that may have changed something
    changed: int = 0
    # (key, etag, size) -> sha256 of the bytes already on disk
    _digests: dict[tuple[str, str, int], str] = field(default_factory=dict)
    # waitress's threads count at once (a lost update could undo a count a save saw)
    _counting: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, aws: LocalAws, account_id: str, sinks: SnsSinks | None = None) -> MotoState:
        """The state of the resources `aws` names."""
        return cls(
            account_id=account_id,
            region=aws.region,
            tables={spec.id: aws.settings[spec.setting] for spec in TABLES},
            bucket=aws.settings[Setting.MEDIA_BUCKET],
            push_apps=dict(aws.push_apps),
            queues=_queue_names(aws),
            sinks=sinks,
        )

    def _dynamodb(self) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[self.account_id][self.region]

    def _s3(self) -> Any:
        from moto.s3.models import s3_backends

        return s3_backends[self.account_id]["aws"]

    def _sns(self) -> Any:
        from moto.sns.models import sns_backends

        return sns_backends[self.account_id][self.region]

    def _sqs(self) -> Any:
        from moto.sqs.models import sqs_backends

        return sqs_backends[self.account_id][self.region]

    def watch(self, server: Any) -> None:
        """Count the requests `server` (resources.MotoServer) serves that may change
        something: a save looks only when the count moved."""
        app = server.app

        def counting(environ: dict[str, Any], start_response: Any) -> Any:
            try:
                return app(environ, start_response)
            finally:
                # counted once moto has applied it: a save that reads the count first
                # and the tables after cannot miss this change and still look current
                if _may_change(environ):
                    with self._counting:
                        self.changed += 1

        server.app = counting

    def changes(self) -> int:
        return self.changed

    # -- restoring ----------------------------------------------------------------------

    def restore(self, part: Mapping[str, Any], objects_dir: Path) -> None:
        """Put back the saved items ("tables", swept already), "objects" (bytes from
        objects_dir), "push_endpoints" and the sinks' history ("sinks")."""
        dynamodb = self._dynamodb()
        for table_id, items in part.get("tables", {}).items():
            table = dynamodb.get_table(self.tables[table_id])
            for item in items:
                table.put_item(item_from_json(item))
        self._restore_objects(part.get("objects", []), objects_dir)
        self._restore_endpoints(part.get("push_endpoints", []))
        if self.sinks is not None and part.get("sinks") is not None:
            self.sinks.restore(part["sinks"])

    def _restore_objects(self, objects: list[dict[str, Any]], objects_dir: Path) -> None:
        s3 = self._s3()
        for obj in objects:
            body = (objects_dir / obj["sha256"]).read_bytes()
            key = s3.put_object(self.bucket, obj["key"], body)
            # what moto keeps of the upload's headers (content type, x-amz-meta-*), as it was
            key.set_metadata(dict(obj.get("metadata") or {}), replace=True)
            if obj.get("checksum_algorithm"):
                key.checksum_algorithm = obj["checksum_algorithm"]
                key.checksum_value = obj.get("checksum_value")
            self._digests[(obj["key"], _etag(key.etag), len(body))] = obj["sha256"]

    def _restore_endpoints(self, endpoints: list[dict[str, Any]]) -> None:
        from moto.sns.models import PlatformEndpoint

        sns = self._sns()
        for saved in endpoints:
            app_arn = self.push_apps.get(saved["platform"])
            if app_arn is None:
                continue
            endpoint = PlatformEndpoint(
                self.account_id,
                self.region,
                sns.applications[app_arn],
                saved.get("custom_user_data") or "",
                saved["token"],
                dict(saved.get("attributes") or {}),
            )
            # the same ARN: the users table names it
            endpoint.id = saved["id"]
            endpoint.arn = saved["arn"]
            sns.platform_endpoints[endpoint.arn] = endpoint

    # -- capturing ----------------------------------------------------------------------

    def capture(self, objects_dir: Path) -> dict[str, Any]:
        """ "changes" (the count before anything was read), "tables", "objects" (bytes
        not in objects_dir yet are written there now), "push_endpoints", "queues"
        and "sinks"."""
        changes = self.changed
        dynamodb = self._dynamodb()
        tables: dict[str, list[dict[str, Any]]] = {}
        for table_id, name in self.tables.items():
            table = dynamodb.get_table(name)
            tables[table_id] = _settle(partial(_items, table))
        sns = self._sns()
        platforms = {arn: platform for platform, arn in self.push_apps.items()}
        endpoints = [
            {
                "platform": platforms.get(e.application.arn, e.application.platform),
                "arn": e.arn,
                "id": str(e.id),
                "token": e.token,
                "custom_user_data": e.custom_user_data,
                "attributes": dict(e.attributes),
            }
            for e in _settle(lambda: list(sns.platform_endpoints.values()))
        ]
        queues: dict[str, list[dict[str, Any]]] = {}
        sqs = self._sqs()
        for which, name in self.queues.items():
            queue = sqs.queues.get(name)
            messages = _settle(partial(list, queue._messages)) if queue else []
            queues[which] = [
                {"body": m.body, "group_id": m.group_id, "deduplication_id": m.deduplication_id}
                for m in messages
            ]
        if self.sinks is not None:
            self.sinks.poll()
        return {
            "changes": changes,
            "tables": tables,
            "objects": self._capture_objects(objects_dir),
            "push_endpoints": endpoints,
            "queues": queues,
            "sinks": self.sinks.history() if self.sinks else {"sms": [], "push": []},
        }

    def _capture_objects(self, blobs: Path) -> list[dict[str, Any]]:
        """Every media object's metadata; bytes not on disk yet are written now."""
        bucket = self._s3().get_bucket(self.bucket)
        keys = _settle(lambda: list(bucket.keys.items()))
        objects = []
        for name, key in keys:
            identity = (name, _etag(key.etag), key.size)
            digest = self._digests.get(identity)
            if digest is None or not (blobs / digest).is_file():
                body = key.value
                digest = hashlib.sha256(body).hexdigest()
                if not (blobs / digest).is_file():
                    blobs.mkdir(parents=True, exist_ok=True)
                    _write_atomic(blobs / digest, body)
                self._digests[identity] = digest
            objects.append(
                {
                    "key": name,
                    "sha256": digest,
                    "size": key.size,
                    "metadata": dict(key.metadata),
                    "checksum_algorithm": key.checksum_algorithm,
                    "checksum_value": key.checksum_value,
                }
            )
        return objects


# -- the state of a running stack ------------------------------------------------------------


class LocalState:
    """One stack's state directory: locked while open, restored into moto, and
    saved on change and at stop."""

    def __init__(self, directory: Path, *, fresh: bool = False) -> None:
        self.directory = directory
        self._lock = _Lock(directory)
        self._lock.acquire()
        try:
            if fresh:
                _clear(directory)
            self._saved = read_state(directory)
        except BaseException:
            self._lock.release()
            raise
        self.stack_id: str = self._saved["stack_id"] if self._saved else secrets.token_hex(8)
        self.created_at: float = (
            self._saved.get("created_at", time.time()) if self._saved else time.time()
        )
        self.generation: int = int(self._saved.get("generation", 0)) if self._saved else 0
        self._aws: LocalAws | None = None
        self._moto: Moto | None = None
        self._secret = ""
        self._flushed_changes = -1 if self._saved is None else 0
        self._write_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def restoring(self) -> bool:
        return self._saved is not None

    # -- start-up -----------------------------------------------------------------------

    def restore(self, aws: LocalAws, moto: Moto) -> Summary | None:
        """Put the saved state into the freshly provisioned `aws` (None: nothing
        saved), whose moto counts the changes from now on."""
        started = time.perf_counter()
        self._aws, self._moto = aws, moto
        summary = None
        if self._saved is not None:
            try:
                summary = self._restore(self._saved)
            except Exception as exc:  # whatever it is, say so plainly and stop
                raise _unloadable(self.directory, f"it cannot be restored ({exc!r})") from exc
            summary.seconds = time.perf_counter() - started
            # what the restore itself changed is saved already
            self._flushed_changes = moto.changes()
        self._secret = self._read_secret()
        self._saved = None  # restored; the memory can go
        return summary

    def _restore(self, saved: dict[str, Any]) -> Summary:
        assert self._moto is not None
        tables, swept = sweep_expired(saved["tables"], time.time())
        self._moto.restore(
            {
                "tables": tables,
                "objects": saved.get("objects", []),
                "push_endpoints": saved.get("push_endpoints", []),
                "sinks": saved.get("sinks"),
            },
            self.directory / OBJECTS_DIR,
        )
        self._restore_secret(saved["signing_secret"])
        self._restore_queues(saved.get("queues", {}))
        return Summary(
            accounts=sum(
                1 for item in tables.get("Users", []) if item.get("sk") == {"S": "PROFILE"}
            ),
            envelopes=len(tables.get("Mailbox", [])),
            objects=len(saved.get("objects", [])),
            items=sum(len(items) for items in tables.values()),
            swept=swept,
        )

    def _restore_secret(self, secret: str) -> None:
        from local.resources import client

        assert self._aws is not None
        # the same key: tokens issued before the restart stay valid
        client(self._aws, "secretsmanager").put_secret_value(
            SecretId=self._aws.settings[Setting.SIGNING_SECRET_ARN], SecretString=secret
        )

    def _read_secret(self) -> str:
        from local.resources import client

        assert self._aws is not None
        answer = client(self._aws, "secretsmanager").get_secret_value(
            SecretId=self._aws.settings[Setting.SIGNING_SECRET_ARN]
        )
        return str(answer["SecretString"])

    def _restore_queues(self, queues: dict[str, list[dict[str, Any]]]) -> None:
        from local.resources import client

        assert self._aws is not None
        sqs = client(self._aws, "sqs")
        names = _queue_names(self._aws)
        for which, messages in queues.items():
            if which not in names or not messages:
                continue
            url = sqs.get_queue_url(QueueName=names[which])["QueueUrl"]
            for message in messages:
                kwargs: dict[str, Any] = {"QueueUrl": url, "MessageBody": message["body"]}
                if message.get("group_id"):
                    kwargs["MessageGroupId"] = message["group_id"]
                if message.get("deduplication_id"):
                    kwargs["MessageDeduplicationId"] = message["deduplication_id"]
                sqs.send_message(**kwargs)

    # -- saving -------------------------------------------------------------------------

    def capture(self) -> dict[str, Any]:
        """Everything to save (media bytes written by digest); "changes" is moto's
        count of changing requests before it read anything."""
        assert self._moto is not None
        part = self._moto.capture(self.directory / OBJECTS_DIR)
        return {
            "format": FORMAT,
            "stack_id": self.stack_id,
            "created_at": self.created_at,
            "signing_secret": self._secret,
            **part,
        }

    def flush(self, *, force: bool = False) -> bool:
        """Save now if anything may have changed since the last save; whether it wrote."""
        assert self._moto is not None
        with self._write_lock:
            if not force and self._moto.changes() == self._flushed_changes:
                return False
            state = self.capture()
            changes = state.pop("changes")
            self.generation += 1
            state["generation"] = self.generation
            state["saved_at"] = time.time()
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.directory / STATE_FILE, json.dumps(state).encode())
            _fsync_dir(self.directory)
            self._flushed_changes = changes
            self._collect(state["objects"])
            return True

    def _collect(self, objects: list[dict[str, Any]]) -> None:
        """Delete the bytes no saved object names any more."""
        blobs = self.directory / OBJECTS_DIR
        if not blobs.is_dir():
            return
        named = {obj["sha256"] for obj in objects}
        for blob in blobs.iterdir():
            if blob.name not in named:
                blob.unlink(missing_ok=True)

    async def run(self) -> None:
        """Save every FLUSH_INTERVAL_S seconds when something changed (until cancelled);
        a state so big that a save takes longer than SAVE_SHARE of that is saved less
        often, so saving never takes more than that share of the stack's time."""
        while True:
            took = 0.0
            try:
                started = time.perf_counter()
                await asyncio.to_thread(self.flush)
                took = time.perf_counter() - started
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not save the local state to %s", self.directory)
            await asyncio.sleep(max(FLUSH_INTERVAL_S, took / SAVE_SHARE))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Stop the periodic saving and save once more (the last word at a clean stop)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await asyncio.to_thread(self.flush)
        except Exception:
            log.exception("could not save the local state to %s at stop", self.directory)

    def close(self) -> None:
        self._lock.release()


def _items(table: Any) -> list[dict[str, Any]]:
    return [item_to_json(item) for item in table.all_items()]


def item_to_json(item: Any) -> dict[str, Any]:
    """A moto item as DynamoDB JSON (what the API sends: binary values base64)."""
    return {name: _value_to_json(value) for name, value in item.attrs.items()}


def _value_to_json(value: Any) -> dict[str, Any]:
    kind, raw = value.type, value.value
    if kind == "M":
        return {"M": {k: _value_to_json(v) for k, v in raw.items()}}
    if kind == "L":
        return {"L": [_value_to_json(v) for v in raw]}
    if kind == "B":
        return {"B": _b64(raw)}
    if kind == "BS":
        return {"BS": [_b64(v) for v in raw]}
    if kind in ("SS", "NS"):
        return {kind: list(raw)}
    return {kind: raw}


def _b64(raw: bytes | str) -> str:
    # moto keeps what its request parser made of the base64: bytes (or, older, the text)
    return base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw


def item_from_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB JSON as moto's request parser hands it to a table (binary as bytes)."""
    return {name: _value_from_json(value) for name, value in item.items()}


def _value_from_json(value: Mapping[str, Any]) -> dict[str, Any]:
    ((kind, raw),) = value.items()
    if kind == "M":
        return {"M": {k: _value_from_json(v) for k, v in raw.items()}}
    if kind == "L":
        return {"L": [_value_from_json(v) for v in raw]}
    if kind == "B":
        return {"B": base64.b64decode(raw)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in raw]}
    return {kind: raw}


def _etag(etag: str) -> str:
    return etag.strip('"')


def _may_change(environ: Mapping[str, Any]) -> bool:
    method = environ.get("REQUEST_METHOD", "")
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    action = target.rsplit(".", 1)[-1]
    return not (action and action.startswith(_READS))


# -- what local/serve.py calls ----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`reset`, --state-dir, --fresh and --yes on `python -m local`'s parser."""
    parser.add_argument(
        "command",
        nargs="?",
        choices=["reset"],
        help="reset: delete the local state (asks first; --yes for scripts)",
    )
    parser.add_argument(
        "--state-dir",
        help=f"where the local state is kept (env PARLEY_LOCAL_STATE, default {DEFAULT_STATE_DIR})",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start empty: discard the saved local state"
    )
    parser.add_argument(
        "--ephemeral",
        action="store_true",
        help="keep no state: start empty, save nothing (load tests, throwaway runs)",
    )
    parser.add_argument("--yes", action="store_true", help="reset without asking")


def open_state(args: argparse.Namespace) -> LocalState:
    """The state directory the options name, locked (StateRefused: say why and stop)."""
    return LocalState(state_dir(args.state_dir), fresh=args.fresh)


def restore(state: LocalState, aws: LocalAws, moto: Moto) -> None:
    """Put the saved state back into moto and say what came back."""
    summary = state.restore(aws, moto)
    if summary is not None:
        print(summary.line(state.directory), flush=True)


def reset_command(args: argparse.Namespace) -> int:
    """`python -m local reset`: delete the state after asking (y/N)."""
    directory = state_dir(args.state_dir)
    if not (directory / STATE_FILE).exists() and not (directory / OBJECTS_DIR).exists():
        print(f"There is no local state in {directory}.")
        return 0
    if not args.yes:
        try:
            answer = input(
                f"Delete the local state in {directory} (every account, message and file)? [y/N] "
            )
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing was deleted.")
            return 1
    try:
        reset(directory)
    except StateRefused as refused:
        print(refused, file=sys.stderr)
        return 1
    print(f"Deleted the local state in {directory}; the next start is empty.")
    return 0
