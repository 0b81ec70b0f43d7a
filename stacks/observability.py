"""CloudWatch: the dashboard and the alarms an on-call engineer needs on day one.

The dashboard reads two kinds of metric. The service's own come from the
handlers as EMF (Powertools Metrics, namespace "Parley", one dimension
`service=parley`): messages sent, delivered and acked, fan-out size, sync
pages, authorizer decisions, codes texted. The platform's come from AWS:
Lambda errors, throttles and p99 duration per function, API Gateway errors and
integration latency, DynamoDB throttles, SQS depth and age.

Alarms fire on what needs a person: function errors and throttles, p99 duration
close to what users notice, API 5xx, DynamoDB throttling, jobs in a dead-letter
queue, a fan-out queue falling behind, connections mostly refused, and mail
waiting in mailboxes instead of being delivered live. Missing data never
alarms (a quiet stage is a healthy one). With `alarmTopicArn` in the context
every alarm notifies that SNS topic when it fires and when it recovers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from parley_server.catalogue import FUNCTIONS, Setting
from parley_server.metrics import Metric
from stacks.functions import POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME

__all__ = [
    "APP_DIMENSIONS",
    "AUTHORIZER_FUNCTION",
    "Observability",
    "Thresholds",
    "app_metric",
    "queues_in",
]

# Powertools gives every EMF metric one dimension: the service name.
APP_DIMENSIONS = {"service": POWERTOOLS_SERVICE_NAME}
# The authorizer answers a refusal by raising "Unauthorized" (API Gateway's
# contract), so its Lambda Errors count refusals too; its alarm subtracts them.
AUTHORIZER_FUNCTION = "WsAuthorizer"
_PERIOD = Duration.minutes(5)
_MINUTE = Duration.minutes(1)


@dataclass(frozen=True)
class Thresholds:
    """When an alarm fires. Each is judged over 5-minute periods unless it says otherwise."""

    # Lambda errors: at least this many, and at least this share of invocations
    function_errors: int = 5
    function_error_percent: float = 1.0
    # any throttle means Lambda turned work away (concurrency limit reached)
    function_throttles: int = 1
    # p99 duration: interactive routes are felt by people above ~2 s
    p99_ms: int = 2000
    # ... except where one invocation legitimately does more: a sync page posts up to 100
    # events, a fan-out job a whole slice of a group (nobody waits on it: its queue's age
    # alarm says when it falls behind)
    p99_ms_by_function: Mapping[str, int] = field(
        default_factory=lambda: {"WsSync": 10_000, "GroupFanout": 20_000}
    )
    # API Gateway 5xx: at least this many, and this share of requests
    api_errors: int = 5
    api_error_percent: float = 1.0
    # DynamoDB read+write throttle events per table (the SDK retries a few; many is a hot key)
    table_throttles: int = 25
    # any job in a dead-letter queue was given up on
    dead_letters: int = 1
    # a work queue whose oldest job waits this long is falling behind
    queue_age_s: int = 300
    # refusals: at least this many in 15 minutes, and this share of connection attempts
    denials: int = 50
    denial_percent: float = 50.0
    # median age of what sync delivers, over 15 minutes: when most syncs deliver mail
    # this old, live delivery is failing and everyone depends on reconnecting
    mailbox_age_s: int = 3600

    def p99_budget_ms(self, function_id: str) -> int:
        budget = self.p99_ms_by_function.get(function_id, self.p99_ms)
        timeout_ms = {spec.id: spec.timeout_s * 1000 for spec in FUNCTIONS}.get(function_id)
        # never above half the timeout: by then timeouts are the next thing users see
        return min(budget, timeout_ms // 2) if timeout_ms else budget


def queues_in(scope: Construct) -> list[sqs.Queue]:
    """Every SQS queue defined under `scope` (work queues and their dead-letter queues)."""
    return [c for c in scope.node.find_all() if isinstance(c, sqs.Queue)]


def app_metric(name: Metric, statistic: str = "Sum", label: str | None = None) -> cw.Metric:
    """One of the handlers' EMF metrics."""
    return cw.Metric(
        namespace=POWERTOOLS_METRICS_NAMESPACE,
        metric_name=name.value,
        dimensions_map=APP_DIMENSIONS,
        statistic=statistic,
        period=_MINUTE,
        label=label or name.value,
    )


class Observability(Construct):
    """The dashboard (`dashboard`) and every alarm (`alarms`), optionally notifying a topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        functions: Mapping[str, lambda_.IFunction],
        tables: Mapping[Setting, dynamodb.ITable],
        websocket_stage: apigwv2.WebSocketStage,
        http_stage: apigwv2.HttpStage,
        queues: Sequence[sqs.Queue] = (),
        alarm_topic_arn: str | None = None,
        thresholds: Thresholds | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._name = name
        self._limits = thresholds or Thresholds()
        self._topic = (
            sns.Topic.from_topic_arn(self, "AlarmTopic", alarm_topic_arn)
            if alarm_topic_arn
            else None
        )
        self.alarms: list[cw.Alarm] = []
        dead_letter_queues = {
            q.dead_letter_queue.queue.node.path for q in queues if q.dead_letter_queue is not None
        }
        work_queues = [q for q in queues if q.node.path not in dead_letter_queues]
        dlqs = [q for q in queues if q.node.path in dead_letter_queues]

        self._function_alarms(functions)
        self._api_alarms(websocket_stage, http_stage)
        self._table_alarms(tables)
        self._queue_alarms(work_queues, dlqs)
        self._app_alarms()

        rows: list[list[cw.IWidget]] = [
            [_header(name)],
            self._messaging_row(),
            self._connections_row(websocket_stage),
            self._sign_in_row(http_stage),
            _accounts_row(),
            _functions_row(functions),
            _tables_row(tables),
        ]
        if queues:
            rows.append(_queues_row(work_queues, dlqs))
        rows.append(
            [
                cw.AlarmStatusWidget(
                    title="Alarms",
                    alarms=list(self.alarms),
                    width=24,
                    height=2 + len(self.alarms) // 4,
                    sort_by=cw.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP,
                )
            ]
        )
        self.dashboard = cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=name,
            default_interval=Duration.hours(3),
            widgets=rows,
        )

    # -- alarms --------------------------------------------------------------------------

    def _alarm(
        self,
        construct_id: str,
        metric: cw.IMetric,
        threshold: float,
        description: str,
        *,
        periods: int = 1,
        datapoints: int | None = None,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            construct_id,
            alarm_name=f"{self._name}-{construct_id}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=periods,
            datapoints_to_alarm=datapoints or periods,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        if self._topic is not None:
            action = cw_actions.SnsAction(self._topic)
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        self.alarms.append(alarm)
        return alarm

    def _function_alarms(self, functions: Mapping[str, lambda_.IFunction]) -> None:
        t = self._limits
        refused = app_metric(Metric.CONNECT_REFUSED).with_(period=_PERIOD)
        for function_id, function in sorted(functions.items()):
            errors = function.metric_errors(period=_PERIOD, statistic="Sum")
            calls = function.metric_invocations(period=_PERIOD, statistic="Sum")
            if function_id == AUTHORIZER_FUNCTION:
                faults = cw.MathExpression(
                    expression=f"IF(errors - refused >= {t.function_errors}, errors - refused, 0)",
                    using_metrics={"errors": errors, "refused": refused},
                    label="authorizer faults (errors that were not refusals)",
                    period=_PERIOD,
                )
                self._alarm(
                    f"{function_id}-Faults",
                    faults,
                    t.function_errors,
                    "The WebSocket authorizer failed for reasons other than a bad token "
                    "(its refusals are subtracted): clients cannot connect. Look at the "
                    "WsAuthorizer logs for 'unhandled' and at Secrets Manager and the users table.",
                )
            else:
                rate = cw.MathExpression(
                    expression=(
                        f"IF(errors >= {t.function_errors} AND calls > 0, 100 * errors / calls, 0)"
                    ),
                    using_metrics={"errors": errors, "calls": calls},
                    label=f"{function_id} errors (% of invocations)",
                    period=_PERIOD,
                )
                self._alarm(
                    f"{function_id}-Errors",
                    rate,
                    t.function_error_percent,
                    f"{function_id} raised unhandled errors in at least "
                    f"{t.function_error_percent}% of invocations (and {t.function_errors}+). "
                    "Handled errors become error events; these are faults: read the "
                    "function's logs (level ERROR) and its X-Ray traces.",
                )
            self._alarm(
                f"{function_id}-Throttles",
                function.metric_throttles(period=_PERIOD, statistic="Sum"),
                t.function_throttles,
                f"Lambda throttled {function_id}: the account's (or the function's) "
                "concurrency is exhausted and requests were refused. Check ConcurrentExecutions "
                "and ask for a concurrency quota raise (docs/SCALE.md).",
            )
            budget = t.p99_budget_ms(function_id)
            self._alarm(
                f"{function_id}-P99Duration",
                function.metric_duration(period=_PERIOD, statistic="p99"),
                budget,
                f"p99 duration of {function_id} reached {budget} ms for 15 minutes. Slow "
                "dependencies (DynamoDB latency or throttling, @connections posts) show in "
                "X-Ray; cold starts show as Init Duration in the logs.",
                periods=3,
            )

    def _api_alarms(self, websocket: apigwv2.WebSocketStage, http: apigwv2.HttpStage) -> None:
        t = self._limits
        server_errors = http.metric_server_error(period=_PERIOD, statistic="Sum")
        requests = http.metric_count(period=_PERIOD, statistic="Sum")
        self._alarm(
            "HttpApi-5xx",
            cw.MathExpression(
                expression=f"IF(e >= {t.api_errors} AND n > 0, 100 * e / n, 0)",
                using_metrics={"e": server_errors, "n": requests},
                label="HTTP API 5xx (% of requests)",
                period=_PERIOD,
            ),
            t.api_error_percent,
            "The HTTP API answered 5xx to at least "
            f"{t.api_error_percent}% of requests: sign-in, keys or media are failing. "
            "503 service_unavailable means a dependency failed (see Error_service_unavailable); "
            "other 5xx are the HttpApi function's faults or API Gateway's.",
        )
        failures = cw.MathExpression(
            expression="execution + integration",
            using_metrics={
                "execution": websocket.metric("ExecutionError", period=_PERIOD, statistic="Sum"),
                "integration": websocket.metric(
                    "IntegrationError", period=_PERIOD, statistic="Sum"
                ),
            },
            label="WebSocket execution + integration errors",
            period=_PERIOD,
        )
        self._alarm(
            "WebSocketApi-Errors",
            failures,
            t.api_errors,
            "API Gateway could not run WebSocket routes (execution or integration errors): "
            "frames are being lost before any handler sees them. Check the WebSocket access "
            "logs (integrationError) and the route functions' errors and throttles.",
        )

    def _table_alarms(self, tables: Mapping[Setting, dynamodb.ITable]) -> None:
        for setting, table in sorted(tables.items()):
            label = _table_label(setting)
            throttles = cw.MathExpression(
                expression="reads + writes",
                using_metrics={
                    "reads": table.metric("ReadThrottleEvents", period=_PERIOD, statistic="Sum"),
                    "writes": table.metric("WriteThrottleEvents", period=_PERIOD, statistic="Sum"),
                },
                label=f"{label} throttle events",
                period=_PERIOD,
            )
            self._alarm(
                f"{label}Table-Throttles",
                throttles,
                self._limits.table_throttles,
                f"DynamoDB throttled the {label} table. On demand, that means one partition "
                "is hot (over 1,000 writes or 3,000 reads a second to one key) or the table "
                "doubled its peak too fast. docs/SCALE.md has the key design; CloudWatch "
                "Contributor Insights on the table names the hot key.",
            )

    def _queue_alarms(self, work: Sequence[sqs.Queue], dead: Sequence[sqs.Queue]) -> None:
        for queue in dead:
            self._alarm(
                f"{_queue_label(queue)}-Depth",
                queue.metric_approximate_number_of_messages_visible(
                    period=_PERIOD, statistic="Maximum"
                ),
                self._limits.dead_letters,
                "Jobs reached this dead-letter queue after failing every retry: some "
                "recipients did not get a message. Read the consumer's logs for the job ids, "
                "fix the cause, then redrive the queue (SQS console: start DLQ redrive).",
            )
        for queue in work:
            self._alarm(
                f"{_queue_label(queue)}-Age",
                queue.metric_approximate_age_of_oldest_message(period=_PERIOD, statistic="Maximum"),
                self._limits.queue_age_s,
                f"The oldest job in this queue waited over {self._limits.queue_age_s} s: "
                "its consumer is falling behind (capped concurrency, throttling or errors), "
                "so recipients get messages late.",
                periods=2,
            )

    def _app_alarms(self) -> None:
        t = self._limits
        quarter = Duration.minutes(15)
        refused = app_metric(Metric.CONNECT_REFUSED).with_(period=quarter)
        allowed = app_metric(Metric.CONNECT_ALLOWED).with_(period=quarter)
        self._alarm(
            "AuthorizerDenials",
            cw.MathExpression(
                # refused >= denials > 0, so the sum is never zero where the ratio is taken
                expression=f"IF(refused >= {t.denials}, 100 * refused / (refused + allowed), 0)",
                using_metrics={"refused": refused, "allowed": allowed},
                label="connections refused (% of attempts)",
                period=quarter,
            ),
            t.denial_percent,
            f"At least {t.denial_percent}% of WebSocket connection attempts were refused "
            "for 15 minutes. A changed signing secret signs everyone out at once; a flood "
            "of bad tokens from few addresses is an attack (the access logs name them).",
        )
        self._alarm(
            "MailboxAge",
            app_metric(Metric.SYNC_OLDEST_AGE, "p50").with_(period=quarter),
            t.mailbox_age_s,
            f"Half of all syncs delivered mail older than {t.mailbox_age_s} s for 30 "
            "minutes: messages wait in mailboxes instead of arriving live. Check "
            "MessagesDelivered against MessagesSent, ConnectionsGone and the WsSend errors.",
            periods=2,
        )

    # -- dashboard ------------------------------------------------------------------------

    def _messaging_row(self) -> list[cw.IWidget]:
        m = Metric
        return [
            _graph(
                "Messages (per minute)",
                [
                    app_metric(m.MESSAGES_SENT, label="sent (envelopes)"),
                    app_metric(m.MESSAGES_DELIVERED, label="delivered live"),
                    app_metric(m.SYNC_DELIVERED, label="delivered by sync"),
                    app_metric(m.MESSAGES_ACKED, label="acked"),
                    app_metric(m.PUSH_SENT, label="push sent"),
                ],
                width=6,
            ),
            _graph(
                "Receipts and refusals (per minute)",
                [
                    app_metric(m.RECEIPTS_SENT, label="receipts stored"),
                    app_metric(m.RECEIPTS_DELIVERED, label="receipts delivered"),
                    app_metric(m.RECEIPTS_ACKED, label="receipts acked"),
                    app_metric(m.MESSAGES_DUPLICATE, label="duplicate sends"),
                    app_metric(m.FRAMES_REFUSED, label="frames refused (error events)"),
                    app_metric(m.CONNECTIONS_GONE, label="connections gone (410)"),
                ],
                width=6,
            ),
            _graph(
                "Fan-out: size per send (left), group jobs per minute (right)",
                [
                    app_metric(m.FAN_OUT, "Average", "1:1 devices (avg)"),
                    app_metric(m.FAN_OUT, "Maximum", "1:1 devices (max)"),
                    app_metric(m.GROUP_FAN_OUT, "Average", "group members (avg)"),
                    app_metric(m.GROUP_FAN_OUT, "Maximum", "group members (max)"),
                ],
                right=[
                    app_metric(m.GROUP_MESSAGES, label="group messages / min"),
                    app_metric(m.GROUP_JOBS_QUEUED, label="fan-out jobs queued / min"),
                    app_metric(m.GROUP_JOBS_DONE, label="fan-out jobs done / min"),
                    app_metric(m.GROUP_JOBS_DROPPED, label="fan-out jobs dropped / min"),
                ],
                width=6,
            ),
            _graph(
                "Sync backlog and mailbox age",
                [
                    app_metric(m.SYNC_DELIVERED, "Average", "events per sync page (avg)"),
                    app_metric(m.SYNC_DELIVERED, "Maximum", "events per sync page (max)"),
                    app_metric(m.SYNC_MORE_PAGES, label="pages with more waiting"),
                ],
                right=[
                    app_metric(m.SYNC_OLDEST_AGE, "p50", "oldest delivered, p50 (s)"),
                    app_metric(m.SYNC_OLDEST_AGE, "Maximum", "oldest delivered, max (s)"),
                ],
                width=6,
            ),
        ]

    def _connections_row(self, websocket: apigwv2.WebSocketStage) -> list[cw.IWidget]:
        m = Metric
        return [
            _graph(
                "Connections (per minute)",
                [
                    app_metric(m.CONNECTS, label="connected"),
                    app_metric(m.DISCONNECTS, label="disconnected"),
                    app_metric(m.CONNECT_ALLOWED, label="authorizer: allowed"),
                    app_metric(m.CONNECT_REFUSED, label="authorizer: denied"),
                ],
            ),
            _graph(
                "WebSocket API (per minute)",
                [
                    websocket.metric("ConnectCount", period=_MINUTE, statistic="Sum"),
                    websocket.metric("MessageCount", period=_MINUTE, statistic="Sum"),
                    websocket.metric("ClientError", period=_MINUTE, statistic="Sum"),
                    websocket.metric("ExecutionError", period=_MINUTE, statistic="Sum"),
                    websocket.metric("IntegrationError", period=_MINUTE, statistic="Sum"),
                ],
            ),
            _graph(
                "WebSocket integration latency (ms)",
                [
                    websocket.metric(
                        "IntegrationLatency", period=_MINUTE, statistic=stat, label=stat
                    )
                    for stat in ("p50", "p99")
                ],
            ),
        ]

    def _sign_in_row(self, http: apigwv2.HttpStage) -> list[cw.IWidget]:
        m = Metric
        return [
            _graph(
                "Sign-in (per minute)",
                [
                    app_metric(m.OTP_SENT, label="codes texted"),
                    app_metric(m.OTP_SEND_FAILED, label="codes not texted"),
                    app_metric(m.OTP_WRONG, label="wrong codes"),
                    app_metric(m.OTP_KILLED, label="codes killed (5 wrong)"),
                    app_metric(m.SIGN_UP, label="new users"),
                    app_metric(m.SIGN_IN, label="new devices"),
                    app_metric(m.RATE_LIMITED, label="rate limited"),
                ],
                width=6,
            ),
            _graph(
                "Codes refused, by limit (per minute)",
                [
                    app_metric(m.OTP_REFUSED_COOLDOWN, label="cool-down"),
                    app_metric(m.OTP_REFUSED_SOURCE, label="per address (IPv6 /64)"),
                    app_metric(m.OTP_REFUSED_PHONE_HOURLY, label="per number, hourly"),
                    app_metric(m.OTP_REFUSED_PHONE_DAILY, label="per number, daily"),
                    app_metric(m.OTP_REFUSED_COUNTRY, label="per calling code"),
                    app_metric(m.OTP_REFUSED_GLOBAL, label="global budget"),
                    app_metric(m.OTP_REFUSED_LOCKED, label="number locked"),
                ],
                width=6,
            ),
            _graph(
                "HTTP API answers (per minute)",
                [
                    http.metric_count(period=_MINUTE, statistic="Sum", label="requests"),
                    http.metric_client_error(period=_MINUTE, statistic="Sum", label="4xx"),
                    http.metric_server_error(period=_MINUTE, statistic="Sum", label="5xx"),
                    app_metric(m.DEPENDENCY_DOWN, label="503 service_unavailable"),
                ],
                width=6,
            ),
            _graph(
                "HTTP API latency (ms)",
                [
                    http.metric_integration_latency(
                        period=_MINUTE, statistic=stat, label=f"integration {stat}"
                    )
                    for stat in ("p50", "p99")
                ]
                + [http.metric_latency(period=_MINUTE, statistic="p99", label="total p99")],
                width=6,
            ),
        ]


# -- widgets --------------------------------------------------------------------------------


def _accounts_row() -> list[cw.IWidget]:
    m = Metric
    return [
        _graph(
            "Groups (per minute)",
            [
                app_metric(m.GROUP_CREATED, label="created"),
                app_metric(m.GROUP_MEMBERS_ADDED, label="members added"),
                app_metric(m.GROUP_MEMBER_REMOVED, label="members removed"),
                app_metric(m.GROUP_LEFT, label="members left"),
                app_metric(m.GROUP_ADMIN_PROMOTED, label="admins promoted"),
                app_metric(m.GROUP_ADMIN_DISMISSED, label="admins dismissed"),
                app_metric(m.GROUP_VOUCHED, label="memberships vouched for"),
            ],
        ),
        _graph(
            "Media, keys and devices (per minute)",
            [
                app_metric(m.MEDIA_UPLOADS_ISSUED, label="upload forms issued"),
                app_metric(m.MEDIA_LINKS_ISSUED, label="download links issued"),
                app_metric(m.MEDIA_DELETED, label="media deleted by uploader"),
                app_metric(m.BUNDLES_CLAIMED, label="key bundles claimed"),
                app_metric(m.DEVICE_SIGNED_OUT, label="devices signed out"),
                app_metric(m.ACCOUNT_DELETED, label="accounts deleted"),
                app_metric(m.PUSH_CHALLENGES_SENT, label="push challenges sent"),
                app_metric(m.PUSH_CHALLENGES_PUSHED, label="push challenges pushed"),
                app_metric(m.PUSH_CHALLENGES_UNSENT, label="push challenges not pushed"),
                app_metric(m.PUSH_TOKENS_VERIFIED, label="push tokens verified"),
                app_metric(m.PUSH_CHALLENGES_REFUSED, label="push challenges refused"),
            ],
            right=[app_metric(m.MEDIA_DECLARED_BYTES, label="media bytes declared")],
        ),
        _graph(
            "Linked devices (per minute)",
            [
                app_metric(m.PAIRING_STARTED, label="pairings started"),
                app_metric(m.PAIRING_APPROVED, label="pairings approved"),
                app_metric(m.DEVICE_LINKED, label="devices linked"),
                app_metric(m.DEVICE_LIST_PUBLISHED, label="device lists published"),
            ],
        ),
        _graph(
            "Answers by class, typing and connection failures (per minute)",
            [
                app_metric(m.HTTP_2XX, label="HTTP 2xx"),
                app_metric(m.HTTP_3XX, label="HTTP 3xx"),
                app_metric(m.HTTP_4XX, label="HTTP 4xx"),
                app_metric(m.HTTP_5XX, label="HTTP 5xx"),
                app_metric(m.TYPING_RELAYED, label="typing relayed"),
                app_metric(m.CONNECTION_EVENTS_FAILED, label="$connect/$disconnect failed"),
            ],
        ),
        _graph(
            "Calls (per minute): ringing pushes and relay credentials handed out",
            [
                app_metric(m.CALL_PUSHES_SENT, label="call pushes (high priority)"),
                app_metric(m.PUSH_SENT, label="wake-up pushes"),
                app_metric(m.CALL_RELAYS_ISSUED, label="ICE server sets issued"),
            ],
            width=16,
        ),
        _graph(
            "Requests refused by rate limits (per minute); one-time prekeys running out (right)",
            [
                app_metric(m.SENDS_REFUSED, label="sends (per device per second)"),
                app_metric(m.MAILBOX_QUOTA_REFUSED, label="messages to one user (hourly)"),
                app_metric(m.RECEIPTS_REFUSED, label="read receipts"),
                app_metric(m.TYPING_REFUSED, label="typing"),
                app_metric(m.BUNDLES_REFUSED, label="bundle claims (caller)"),
                app_metric(m.BUNDLES_OF_TARGET_REFUSED, label="bundle claims of one person"),
                app_metric(m.LOOKUPS_REFUSED, label="phone lookups"),
                app_metric(m.MEDIA_FORMS_REFUSED, label="media forms"),
                app_metric(m.MEDIA_BYTES_REFUSED, label="media bytes (daily)"),
                app_metric(m.CONTACT_WRITES_REFUSED, label="contact writes"),
                app_metric(m.CALL_RELAYS_REFUSED, label="call relays"),
            ],
            right=[
                app_metric(m.PREKEYS_LOW, label="devices left few prekeys"),
                app_metric(m.PREKEYS_DRAINED, label="devices with none left"),
            ],
            width=24,
        ),
    ]


def _graph(
    title: str,
    left: Sequence[cw.IMetric],
    *,
    right: Sequence[cw.IMetric] = (),
    width: int = 8,
) -> cw.GraphWidget:
    # rows are 24 units wide: three graphs of 8, or four of 6
    return cw.GraphWidget(
        title=title, left=list(left), right=list(right) or None, width=width, height=6
    )


def _header(name: str) -> cw.TextWidget:
    return cw.TextWidget(
        width=24,
        height=2,
        markdown=(
            f"# Parley: {name}\n"
            "Service metrics are the handlers' EMF (namespace Parley, dimension "
            "service=parley); the rest are AWS's own. Alarms are listed at the bottom; "
            "each says what it means and where to look first."
        ),
    )


def _functions_row(functions: Mapping[str, lambda_.IFunction]) -> list[cw.IWidget]:
    items = sorted(functions.items())
    return [
        _graph(
            "Lambda errors",
            [f.metric_errors(period=_MINUTE, statistic="Sum", label=i) for i, f in items],
            width=6,
        ),
        _graph(
            "Lambda throttles",
            [f.metric_throttles(period=_MINUTE, statistic="Sum", label=i) for i, f in items],
            width=6,
        ),
        _graph(
            "Lambda p99 duration (ms)",
            [f.metric_duration(period=_MINUTE, statistic="p99", label=i) for i, f in items],
            width=6,
        ),
        _graph(
            "Lambda concurrent executions",
            [
                f.metric("ConcurrentExecutions", period=_MINUTE, statistic="Maximum", label=i)
                for i, f in items
            ],
            # the account's concurrency quota is shared with everything else in the region
            right=[
                cw.Metric(
                    namespace="AWS/Lambda",
                    metric_name="ConcurrentExecutions",
                    statistic="Maximum",
                    period=_MINUTE,
                    label="account (all functions)",
                )
            ],
            width=6,
        ),
    ]


def _tables_row(tables: Mapping[Setting, dynamodb.ITable]) -> list[cw.IWidget]:
    items = sorted(tables.items())
    return [
        _graph(
            "DynamoDB throttle events",
            [
                cw.MathExpression(
                    # ids are unique per graph: one pair per table
                    expression=f"r{n} + w{n}",
                    using_metrics={
                        f"r{n}": t.metric("ReadThrottleEvents", period=_MINUTE, statistic="Sum"),
                        f"w{n}": t.metric("WriteThrottleEvents", period=_MINUTE, statistic="Sum"),
                    },
                    label=_table_label(s),
                    period=_MINUTE,
                )
                for n, (s, t) in enumerate(items)
            ],
        ),
        _graph(
            "DynamoDB write units consumed (per minute)",
            [
                t.metric_consumed_write_capacity_units(
                    period=_MINUTE, statistic="Sum", label=_table_label(s)
                )
                for s, t in items
            ],
        ),
        _graph(
            "DynamoDB read units consumed (per minute)",
            [
                t.metric_consumed_read_capacity_units(
                    period=_MINUTE, statistic="Sum", label=_table_label(s)
                )
                for s, t in items
            ],
        ),
    ]


def _queues_row(work: Iterable[sqs.Queue], dead: Iterable[sqs.Queue]) -> list[cw.IWidget]:
    work, dead = list(work), list(dead)
    return [
        _graph(
            "Queues: jobs waiting",
            [
                q.metric_approximate_number_of_messages_visible(
                    period=_MINUTE, statistic="Maximum", label=_queue_label(q)
                )
                for q in work + dead
            ],
            width=12,
        ),
        _graph(
            "Queues: age of oldest job (s)",
            [
                q.metric_approximate_age_of_oldest_message(
                    period=_MINUTE, statistic="Maximum", label=_queue_label(q)
                )
                for q in work
            ],
            width=12,
        ),
    ]


def _table_label(setting: Setting) -> str:
    # PARLEY_MAILBOX_TABLE -> Mailbox
    return setting.value.removeprefix("PARLEY_").removesuffix("_TABLE").title().replace("_", "")


def _queue_label(queue: sqs.Queue) -> str:
    # the construct path below the stack, e.g. GroupFanout/DeadLetters -> GroupFanout-DeadLetters
    path = queue.node.path.split("/", 1)[-1]
    return path.replace("/", "-")
