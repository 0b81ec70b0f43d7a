"""The embedded stack: Parley's APIs on one machine with the same handlers as on AWS.

moto's server stands in for DynamoDB, S3, SNS and Secrets Manager
(local.resources); an aiohttp server stands in for API Gateway's HTTP API,
WebSocket API and @connections API (local.gateway), invoking the handlers
named in the catalogue (local.lambdas) in Lambda execution environments of
their own: a process each, started on demand, reused while warm, up to a
concurrency limit per function (local.environments, local.runtime, local.template).
`python -m local` runs it all (local.serve).
"""

from __future__ import annotations

__all__: list[str] = []
