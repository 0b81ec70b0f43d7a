"""The AWS side of the local stack: moto's server on loopback, with every
resource the CDK stack makes, built from the same specs.

Tables come from parley_server.store.schema.TABLES (what stacks/data.py
builds), the bucket's CORS from stacks/media_spec.py, the function settings
from the catalogue, PARLEY_LIMITS from the stack's own default settings
(stacks/settings.py), and a default list of test numbers (LOCAL_TEST_NUMBERS);
none of these imports the CDK. The signing secret is
random per run. SNS platform applications for "fcm" and "apns" exist so push
registration and delivery run the same SNS calls as on AWS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parley_server.catalogue import Setting
from parley_server.store.schema import TABLES, create_table_kwargs

__all__ = [
    "FAKE_CREDENTIALS",
    "LOCAL_TEST_NUMBERS",
    "LocalAws",
    "client",
    "environment",
    "provision",
    "start_moto",
]

log = logging.getLogger("local")

ACCOUNT_ID = "123456789012"  # moto's default account
PREFIX = "parley-local"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}
# Test numbers (sign-up without SMS, the code derived from the signing secret):
# +1 206 555-0100 to 555-0199 unless PARLEY_TEST_NUMBERS says otherwise ("[]": none).
LOCAL_TEST_NUMBERS = [f"+12065550{n}" for n in range(100, 200)]
# moto's server: how long a keep-alive connection may idle, and how many may be open
CONNECTION_IDLE_S = 600
CONNECTION_LIMIT = 2000
# Platform application per push platform: (SNS platform, attributes moto needs).
_PLATFORMS = {
    "fcm": ("GCM", {"PlatformCredential": "local-fcm-key"}),
    "apns": ("APNS", {"PlatformCredential": "local-apns-key", "PlatformPrincipal": "local"}),
}


@dataclass
class LocalAws:
    """A running moto server and the resources made in it."""

    endpoint_url: str
    region: str
    settings: dict[Setting, str] = field(default_factory=dict)
    push_apps: dict[str, str] = field(default_factory=dict)
    # the group fan-out jobs queue: (url, arn)
    fanout_queue: tuple[str, str] = ("", "")
    server: Any = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _is_dynamodb_call(environ: dict[str, Any]) -> bool:
    # DynamoDB's API: a POST to / naming its operation (DynamoDB Streams' targets
    # start "DynamoDBStreams_")
    return (
        environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_")
        and environ.get("REQUEST_METHOD") == "POST"
        and environ.get("PATH_INFO") == "/"
    )


def _answer_dynamodb(environ: dict[str, Any], start_response: Any) -> Any:
    """A DynamoDB call answered as moto's Flask app answers it (its view,
    `convert_to_flask_response` around `DynamoHandler.dispatch`), without Flask's
    request and app contexts, URL routing and cross-origin hooks around it: they
    were a tenth of a busy stack's time, and no browser calls DynamoDB. (The view
    also hands each request to moto's recorder, which is off unless asked for, by
    MOTO_ENABLE_RECORDING or its /moto-api endpoint; the stack never asks.)"""
    from botocore.exceptions import ClientError
    from flask import Response
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_server.werkzeug_app import BackendRequest

    request = BackendRequest(environ)
    try:
        result = DynamoHandler.dispatch(request, request.raw_url, dict(request.headers))
    except ClientError as exc:
        result = 400, {}, exc.response["Error"]["Message"]
    status, headers, body = result if len(result) == 3 else (200, {}, result)
    return Response(response=body, status=status, headers=headers)(environ, start_response)


def start_moto(host: str = "127.0.0.1", port: int = 0) -> tuple[MotoServer, str]:
    """moto's server in threads of this process; (server, endpoint URL)."""
    server = MotoServer(host, port)
    bound_host, bound_port = server.start()
    return server, f"http://{bound_host}:{bound_port}"


class MotoServer:
    """moto's WSGI app served by waitress on loopback.

    moto's own server (werkzeug's development server) closes the connection after
    every response, so every AWS call of every handler paid a TCP connection and a
    thread of its own; waitress keeps connections alive, as AWS's endpoints do, and
    answers on a fixed pool of threads. `app` is what it serves (the state saver
    wraps it to count changes)."""

    THREADS = 8

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        class Dispatcher(DomainDispatcherApplication):
            """moto's dispatcher, remembering which backend serves which host: moto
            works it out again for every request by listing its own package's
            directories, a tenth of a busy local stack's time."""

            def __init__(self) -> None:
                super().__init__(create_backend_app)
                self._backends: dict[str | None, Any] = {}

            def get_backend_for_host(self, host: str | None) -> Any:
                if host not in self._backends:
                    self._backends[host] = super().get_backend_for_host(host)
                return self._backends[host]

            def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
                if _is_dynamodb_call(environ):
                    return _answer_dynamodb(environ, start_response)
                return super().__call__(environ, start_response)

        self.app: Any = Dispatcher()
        self._host, self._port = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._dynamodb = threading.Lock()

    def _serve(self, environ: dict[str, Any], start_response: Any) -> Any:
        # One DynamoDB request at a time, as each of DynamoDB's calls is atomic: moto's
        # backend is not thread-safe (TransactWriteItems deep-copies the tables it
        # writes while other threads change them, and answers 500). Its requests are
        # Python under one interpreter lock anyway. Not every service: an SQS receive
        # long-polls, and would hold up every other request while it waits.
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with self._dynamodb:
                return self.app(environ, start_response)
        return self.app(environ, start_response)

    def start(self) -> tuple[str, int]:
        from waitress.server import create_server

        # waitress warns of every queued request under load; only errors are useful here
        logging.getLogger("waitress").setLevel(logging.ERROR)
        self._server = create_server(
            self._serve,
            host=self._host,
            port=self._port,
            threads=self.THREADS,
            # an environment's connections idle between its invocations: kept open
            # longer than the stack keeps an idle environment (environments.IDLE_S)
            channel_timeout=CONNECTION_IDLE_S,
            # every warm environment holds a few: waitress's default of 100 would stall
            # the next one to connect until an idle one times out
            connection_limit=CONNECTION_LIMIT,
            ident="moto",
        )
        self._thread = threading.Thread(target=self._server.run, name="moto", daemon=True)
        self._thread.start()
        return str(self._server.effective_host), int(self._server.effective_port)

    def stop(self) -> None:
        """Close every connection and the listening socket, and end the threads."""
        server, self._server = self._server, None
        if server is None:
            return
        from waitress import wasyncore

        trigger = server.trigger

        def close_all_but_the_trigger() -> None:
            # in the loop's own thread, whose loop then ends with nothing left to serve
            try:
                for dispatcher in list(server._map.values()):
                    with contextlib.suppress(OSError):
                        if dispatcher is server:
                            wasyncore.dispatcher.close(server)  # the listener, not its trigger
                        elif dispatcher is not trigger:
                            dispatcher.close()
            finally:
                server._map.clear()

        # The trigger stays open until nothing can pull it any more. pull_trigger
        # queues the close and then writes to wake the loop; a worker's write (a
        # response going out) can wake it first and run the close before that write,
        # which then met a closed pipe (EBADF), or another file that took its number.
        trigger.pull_trigger(close_all_but_the_trigger)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        server.task_dispatcher.shutdown()  # the workers, which pull it to send
        trigger.close()


def _session(region: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    )


def client(aws: LocalAws, service: str) -> Any:
    """A boto3 client for one of the local stack's own resources."""
    return _session(aws.region).client(service, endpoint_url=aws.endpoint_url)


def _media_cors() -> list[dict[str, Any]]:
    from stacks.media_spec import MEDIA_CORS
    from stacks.settings import ParleySettings

    return [MEDIA_CORS.s3_rule(ParleySettings().cors_origins)]


def provision(endpoint_url: str, region: str, *, prefix: str = PREFIX) -> LocalAws:
    """Create every table, the media bucket, the signing secret and the push
    platform applications at `endpoint_url`; the settings that name them."""
    session = _session(region)
    aws = LocalAws(endpoint_url=endpoint_url, region=region)
    ddb = session.client("dynamodb", endpoint_url=endpoint_url)
    for spec in TABLES:
        name = f"{prefix}-{spec.id.lower()}"
        ddb.create_table(**create_table_kwargs(spec, name))
        if spec.ttl_attribute:
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
            )
        aws.settings[spec.setting] = name

    bucket = f"{prefix}-media"
    s3 = session.client("s3", endpoint_url=endpoint_url)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": _media_cors()})
    aws.settings[Setting.MEDIA_BUCKET] = bucket

    secret = session.client("secretsmanager", endpoint_url=endpoint_url).create_secret(
        Name=f"{prefix}-signing-key", SecretString=secrets.token_urlsafe(48)
    )
    aws.settings[Setting.SIGNING_SECRET_ARN] = secret["ARN"]

    sns = session.client("sns", endpoint_url=endpoint_url)
    for platform, (sns_platform, attributes) in _PLATFORMS.items():
        app = sns.create_platform_application(
            Name=f"{prefix}-{platform}", Platform=sns_platform, Attributes=attributes
        )
        aws.push_apps[platform] = app["PlatformApplicationArn"]
    aws.settings[Setting.PUSH_APPS] = json.dumps(aws.push_apps, sort_keys=True)

    aws.fanout_queue = _fanout_queues(session.client("sqs", endpoint_url=endpoint_url), prefix)
    aws.settings[Setting.GROUP_FANOUT_QUEUE] = aws.fanout_queue[0]
    aws.settings[Setting.LIMITS] = os.environ.get(Setting.LIMITS.value) or _default_limits()
    # SNS's choice of sender unless PARLEY_SMS_ORIGINATION says otherwise (the SMS sink
    # shows the text either way)
    aws.settings[Setting.SMS_ORIGINATION] = os.environ.get(Setting.SMS_ORIGINATION.value) or "{}"
    aws.settings[Setting.TEST_NUMBERS] = os.environ.get(
        Setting.TEST_NUMBERS.value, json.dumps(LOCAL_TEST_NUMBERS)
    )
    # moto has no Kinesis Video signalling channels, and every peer runs on this machine:
    # GET /v1/calls/relays offers no STUN or TURN server (host candidates on loopback)
    aws.settings[Setting.CALL_RELAYS] = "loopback"
    aws.settings[Setting.CALL_CHANNELS] = "[]"
    return aws


def _fanout_queues(sqs: Any, prefix: str) -> tuple[str, str]:
    """The fan-out FIFO queue and its dead-letter queue, as stacks/fanout.py makes them."""
    from parley_server.catalogue import function
    from stacks.fanout_spec import FANOUT_QUEUE

    dead = sqs.create_queue(
        QueueName=f"{prefix}-fanout-dead.fifo",
        Attributes={
            "FifoQueue": "true",
            "MessageRetentionPeriod": str(FANOUT_QUEUE.dead_letter_retention_days * 24 * 3600),
        },
    )
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead["QueueUrl"], AttributeNames=["QueueArn"])
    attributes = FANOUT_QUEUE.sqs_attributes(
        function("GroupFanout").timeout_s, dead_arn["Attributes"]["QueueArn"]
    )
    jobs = sqs.create_queue(QueueName=f"{prefix}-fanout.fifo", Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=jobs["QueueUrl"], AttributeNames=["QueueArn"])
    return jobs["QueueUrl"], arn["Attributes"]["QueueArn"]


def _default_limits() -> str:
    from stacks.settings import ParleySettings

    limits = json.loads(ParleySettings().limits_json)
    # Every local client signs up from 127.0.0.1, so the per-address SMS-pumping cap
    # (meant for the internet) would lock out a developer after a few demo runs.
    limits["otp_per_source_hourly"] = 10_000
    return json.dumps(limits, sort_keys=True, separators=(",", ":"))


def environment(
    aws: LocalAws, *, ws_endpoint: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The process environment handlers run with: every setting, AWS pointed at
    moto with fake credentials (never a real account), Powertools configured."""
    env = {
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_REGION": aws.region,
        "AWS_DEFAULT_REGION": aws.region,
        **FAKE_CREDENTIALS,
        # nothing from ~/.aws may redirect a call to a real account
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "parley",
        "POWERTOOLS_METRICS_NAMESPACE": "Parley",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **{setting.value: value for setting, value in aws.settings.items()},
        Setting.WS_ENDPOINT.value: ws_endpoint,
    }
    env.update(extra or {})
    return env
