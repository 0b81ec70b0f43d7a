"""What every execution environment of the local stack starts from: the libraries
the handlers import, imported once.

local/environments.py forks each environment from a template process
(multiprocessing's fork server) that imported this module. An environment then
sets up its own variables, IAM enforcement and fault injection, and imports its
handler module: its module state (the handler's, Powertools' loggers and
metrics, every boto3 session and client) is its own, made after the fork, as
on Lambda. What the fork saves is importing these libraries again, about
half a second of CPU per cold start on a two-core machine, most of every
environment's start (a Lambda cold start imports them: bench/coldstart.py
measures that).

Nothing here may start a thread, open a connection or make a boto3 session that
handlers use: a fork copies none of a thread but its own, and an environment's
clients must be made after its IAM check is installed (local/iam/enforce.py).
The X-Ray SDK makes a client of its own at import (for sampling rules, used
only when tracing is on), which no handler uses; tracing is off locally.

botocore's data (each service's model and endpoint rules, the partitions, the
retry and default configurations: JSON files) is read and parsed here once, and
every environment's clients take it from memory: parsing it was about a fifth
of a busy environment's time, each cold start making its clients afresh
(botocore reads each file once per session, and each environment has its own).
The data is botocore's own, shared as one session's loader shares it between its
clients (read, and merged with its extras files, which gives the same result
each time).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["AWS_SERVICES", "PRELOADED"]

# What the handlers import at their cold start, besides the service's own code
# (tests/unit/local/test_environments.py holds every handler to this list).
PRELOADED = (
    "asyncio",
    "boto3",
    "boto3.dynamodb.conditions",
    "botocore.client",
    "botocore.session",
    "jwt",
    "msgspec",
    "nacl.pwhash",
    "nacl.signing",
    "phonenumbers",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler.api_gateway",
    "aws_lambda_powertools.event_handler.middlewares",
    "aws_lambda_powertools.event_handler.router",
    "aws_lambda_powertools.logging.correlation_paths",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.data_classes",
    "aws_lambda_powertools.utilities.parameters",
    # Powertools' Tracer imports the X-Ray SDK (the asset ships it)
    "aws_xray_sdk.core",
    "local.runtime",
)

for _name in PRELOADED:
    importlib.import_module(_name)

# The services handlers make boto3 clients for (parley_server/store)
AWS_SERVICES = (
    "apigatewaymanagementapi",
    "dynamodb",
    "kinesis-video-signaling",
    "kinesisvideo",
    "s3",
    "secretsmanager",
    "sns",
    "sqs",
)


def _read_botocore_data_once() -> None:
    import boto3
    from botocore import loaders

    read = loaders.JSONFileLoader.load_file
    loaded: dict[str, Any] = {}  # a path -> its data, or None where no file is

    def load_file(self: Any, file_path: str) -> Any:
        try:
            return loaded[file_path]
        except KeyError:
            data = loaded[file_path] = read(self, file_path)
            return data

    loaders.JSONFileLoader.load_file = load_file
    # clients of a session no handler sees, made only to read what clients read: a
    # boto3 session, as the handlers' are (it looks in boto3's data too), and given
    # credentials, so none are looked for
    reader = boto3.session.Session()
    for service in AWS_SERVICES:
        reader.client(
            service,
            region_name="us-east-1",
            endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="template",
            aws_secret_access_key="template",  # noqa: S106 (never used to sign)
        )


_read_botocore_data_once()
