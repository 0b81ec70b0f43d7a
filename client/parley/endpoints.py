"""Where the service is: the local stack's JSON file, or `cdk deploy` outputs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parley.errors import ConfigurationError

__all__ = ["Endpoints", "local_file"]


def local_file() -> Path:
    """The file `make serve` writes: PARLEY_LOCAL_FILE, else ~/.parley/local.json."""
    override = os.environ.get("PARLEY_LOCAL_FILE")
    return Path(override).expanduser() if override else Path.home() / ".parley" / "local.json"


@dataclass(frozen=True)
class Endpoints:
    http_url: str
    ws_url: str
    sms_url: str | None = None  # local mode only: the SMS sink
    push_url: str | None = None  # local mode only: the push sink
    region: str | None = None
    aws_endpoint_url: str | None = None  # local mode only: the AWS emulator
    # local mode only: the id of the local stack's state (new after --fresh or a reset)
    stack_id: str | None = None

    @classmethod
    def local(cls, path: Path | None = None) -> Endpoints:
        """The running local stack's endpoints."""
        path = path or local_file()
        raw = _read_json(path, hint="start the local stack with `make serve`")
        try:
            return cls(
                http_url=_url(raw["http_url"]),
                ws_url=_url(raw["ws_url"]),
                sms_url=raw.get("sms_url"),
                push_url=raw.get("push_url"),
                region=raw.get("region"),
                aws_endpoint_url=raw.get("aws_endpoint_url"),
                stack_id=raw.get("stack_id") if isinstance(raw.get("stack_id"), str) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{path} is not a local stack file: {exc}") from exc

    @classmethod
    def from_cdk_outputs(cls, path: Path | None = None) -> Endpoints:
        """The deployed stack's endpoints, from `cdk deploy --outputs-file` output."""
        path = path or Path("cdk-outputs.json")
        raw = _read_json(path, hint="deploy with `make deploy` (it writes cdk-outputs.json)")
        outputs: dict[str, Any] = {}
        for stack in raw.values() if isinstance(raw, dict) else []:
            if isinstance(stack, dict):
                outputs.update(stack)
        http = _output(outputs, "HttpUrl")
        ws = _output(outputs, "WebSocketUrl")
        if http is None or ws is None:
            raise ConfigurationError(f"{path} has no HttpUrl and WebSocketUrl outputs")
        return cls(http_url=_url(http), ws_url=_url(ws), region=_output(outputs, "Region"))


def _read_json(path: Path, *, hint: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{path} not found: {hint}") from exc
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path} cannot be read: {exc}") from exc


def _output(outputs: dict[str, Any], name: str) -> str | None:
    """CDK output keys are the output ids, sometimes with a construct prefix."""
    if isinstance(outputs.get(name), str):
        return str(outputs[name])
    for key, value in sorted(outputs.items()):
        if key.endswith(name) and isinstance(value, str):
            return value
    return None


def _url(value: object) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise ValueError(f"not a URL: {value!r}")
    return value.rstrip("/")
