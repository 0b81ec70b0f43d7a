"""The process-wide boto3 clients of store/aws.py: one per service and endpoint,
forgotten on reset; the session behind them is kept only when asked."""

from __future__ import annotations

from parley_server.store import aws as clients


def test_a_client_is_made_once_per_service_and_endpoint(aws: object) -> None:
    ddb = clients.client("dynamodb")
    assert clients.client("dynamodb") is ddb
    assert clients.client("dynamodb", "http://127.0.0.1:9") is not ddb
    assert clients.client("s3") is not ddb


def test_reset_forgets_the_clients_and_the_session_unless_kept(aws: object) -> None:
    first = clients.client("dynamodb")
    session = clients._SESSION[0]

    clients.reset_clients(keep_session=True)
    second = clients.client("dynamodb")
    assert second is not first
    assert clients._SESSION[0] is session

    clients.reset_clients()
    assert clients.client("dynamodb") is not second
    assert clients._SESSION[0] is not session  # handlers installed since are taken up
