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
"""

from __future__ import annotations

import importlib

__all__ = ["PRELOADED"]

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
