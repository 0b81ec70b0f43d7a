"""local/resources.py's MotoServer: moto's app over keep-alive connections, as AWS's
endpoints answer, with room for every warm environment's connections, and a stop
that closes them all."""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from local.resources import CONNECTION_LIMIT, MotoServer, start_moto


@pytest.fixture
def moto() -> Iterator[tuple[MotoServer, str]]:
    server, url = start_moto()
    try:
        yield server, url
    finally:
        server.stop()


def _dynamodb(url: str, **config: Any) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, **config),
    )


def _client_ports(server: MotoServer) -> list[str]:
    """Record the client port of every request the server answers from now on."""
    ports: list[str] = []
    app = server.app

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        ports.append(environ["REMOTE_PORT"])
        return app(environ, start_response)

    server.app = recording
    return ports


def test_a_client_sends_its_calls_over_one_connection(moto: tuple[MotoServer, str]) -> None:
    server, url = moto
    ddb = _dynamodb(url)
    ports = _client_ports(server)
    for _ in range(5):
        ddb.list_tables()
    assert len(ports) == 5
    assert len(set(ports)) == 1  # werkzeug's server closed each: five ports


def test_idle_connections_beyond_waitress_default_do_not_stall_a_new_one(
    moto: tuple[MotoServer, str],
) -> None:
    _, url = moto
    host, port = url.removeprefix("http://").split(":")
    idle = 150  # waitress's default limit is 100 connections
    assert idle < CONNECTION_LIMIT
    with ExitStack() as stack:
        for _ in range(idle):
            conn = stack.enter_context(socket.create_connection((host, int(port)), timeout=5))
            conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert conn.recv(12).startswith(b"HTTP/1.1")  # answered, and left open
        # a new environment's first call is answered while all of those stay open
        name = f"t-{secrets.token_hex(4)}"
        ddb = _dynamodb(url, connect_timeout=5, read_timeout=5)
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        assert name in ddb.list_tables()["TableNames"]
        ddb.delete_table(TableName=name)


def test_stop_closes_every_connection_and_the_port() -> None:
    server, url = start_moto()
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=5)
    conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert conn.recv(12).startswith(b"HTTP/1.1")
    server.stop()
    try:
        # the kept-alive connection is closed by the server: end of stream, or a reset
        while conn.recv(4096):
            pass
    except ConnectionResetError:
        pass
    finally:
        conn.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5).close()


def test_concurrent_calls_never_see_each_other_half_done(moto: tuple[MotoServer, str]) -> None:
    # moto's TransactWriteItems deep-copies each table it writes (to roll back) while
    # other requests change it: without one request at a time, a copy fails with
    # "dictionary changed size during iteration" and answers 500, which AWS never does
    _, url = moto
    name = f"t-{secrets.token_hex(4)}"
    setup = _dynamodb(url)
    setup.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # a table big enough that copying it takes several of the interpreter's switch intervals
    for start in range(0, 2000, 25):
        keys = [f"old-{n}" for n in range(start, start + 25)]
        rows = [{"PutRequest": {"Item": {"pk": {"S": key}}}} for key in keys]
        setup.batch_write_item(RequestItems={name: rows})
    errors: list[Exception] = []

    def transact(n: int) -> None:
        ddb = _dynamodb(url)
        for i in range(20):
            item = {"pk": {"S": f"tx-{n}-{i}"}}
            try:
                ddb.transact_write_items(TransactItems=[{"Put": {"TableName": name, "Item": item}}])
            except Exception as exc:
                errors.append(exc)

    def put(n: int) -> None:
        ddb = _dynamodb(url)
        for i in range(150):
            try:
                ddb.put_item(TableName=name, Item={"pk": {"S": f"put-{n}-{i}"}})
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=transact, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=put, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert setup.scan(TableName=name, Select="COUNT")["Count"] == 2000 + 3 * 20 + 3 * 150
    setup.delete_table(TableName=name)


def test_a_long_poll_does_not_hold_up_the_calls_it_waits_for(moto: tuple[MotoServer, str]) -> None:
    # the SQS event source long-polls; the message it waits for must get in meanwhile
    _, url = moto
    sqs = boto3.client(
        "sqs",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    queue = sqs.create_queue(QueueName=f"q-{secrets.token_hex(4)}")["QueueUrl"]
    server, app, polling = moto[0], moto[0].app, threading.Event()

    def watching(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET", "").endswith(".ReceiveMessage"):
            polling.set()
        return app(environ, start_response)

    server.app = watching
    got: list[Any] = []
    poll = threading.Thread(
        target=lambda: got.extend(
            sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10).get("Messages", [])
        )
    )
    poll.start()
    assert polling.wait(timeout=10)  # the receive is waiting inside moto
    _dynamodb(url).list_tables()
    sqs.send_message(QueueUrl=queue, MessageBody="job")
    poll.join()
    # the poll was answered with the message sent while it waited, not emptied at its end
    assert [m["Body"] for m in got] == ["job"]
    sqs.delete_queue(QueueUrl=queue)


def _dynamodb_session(url: str) -> list[tuple[Any, ...]]:
    """A session of DynamoDB calls, good and refused; what the server answered to
    each (status, headers but the per-request ones, body)."""
    import http.client
    import urllib.parse

    ddb = _dynamodb(url)
    ddb.create_table(
        TableName="answers",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    answers: list[tuple[Any, ...]] = []
    target = "DynamoDB_20120810."

    def raw(operation: str, body: bytes) -> None:
        where = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
        connection.request(
            "POST",
            "/",
            body,
            {
                "X-Amz-Target": target + operation,
                "Content-Type": "application/x-amz-json-1.0",
                # moto's app tells the service by the credential's scope
                "Authorization": "AWS4-HMAC-SHA256 Credential=x/20261207/us-east-1/dynamodb/"
                "aws4_request, SignedHeaders=host, Signature=0",
            },
        )
        response = connection.getresponse()
        answers.append((response.status, _kept(dict(response.getheaders())), response.read()))
        connection.close()

    def call(operation: str, **params: Any) -> None:
        raw(operation, json.dumps(params).encode())

    item = {"pk": {"S": "a"}, "n": {"N": "1"}, "b": {"B": "AAE="}, "m": {"M": {"x": {"L": []}}}}
    call("PutItem", TableName="answers", Item=item, ReturnConsumedCapacity="TOTAL")
    call("PutItem", TableName="answers", Item=item, ConditionExpression="attribute_not_exists(pk)")
    call("GetItem", TableName="answers", Key={"pk": {"S": "a"}})
    call(
        "Query",
        TableName="answers",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "a"}},
    )
    call(
        "UpdateItem",
        TableName="answers",
        Key={"pk": {"S": "a"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "2"}},
        ReturnValues="ALL_NEW",
    )
    call("BatchGetItem", RequestItems={"answers": {"Keys": [{"pk": {"S": "a"}}]}})
    call("DeleteItem", TableName="answers", Key={"pk": {"S": "a"}}, ReturnValues="ALL_OLD")
    call("GetItem", TableName="answers", Key={"pk": {"N": "1"}})  # the key's type is wrong
    call("GetItem", TableName="missing", Key={"pk": {"S": "a"}})
    call(
        "TransactWriteItems",
        TransactItems=[
            {
                "ConditionCheck": {
                    "TableName": "answers",
                    "Key": {"pk": {"S": "a"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
        ],
    )
    call("NoSuchOperation")
    raw("PutItem", b"{not json")
    ddb.delete_table(TableName="answers")
    return answers


def _kept(headers: dict[str, str]) -> dict[str, str]:
    # what differs between two answers to the same call, and the one header the
    # stack leaves out on purpose: moto's app lets every origin call every service
    # (Access-Control-Allow-Origin: *); no browser calls DynamoDB
    per_request = {"date", "x-amzn-requestid", "x-amz-crc32", "content-length"}
    return {
        k.lower(): v
        for k, v in headers.items()
        if k.lower() not in per_request and not k.lower().startswith("access-control-")
    }


def test_dynamodb_answers_as_motos_flask_app(monkeypatch: pytest.MonkeyPatch) -> None:
    # the stack answers DynamoDB calls without Flask around moto's handler: the
    # same answers, refusals and errors as through moto's app
    from local import resources

    answers: list[list[tuple[Any, ...]]] = []
    for direct in (True, False):
        if not direct:
            monkeypatch.setattr(resources, "_is_dynamodb_call", lambda environ: False)
        server, url = start_moto()
        try:
            answers.append(_dynamodb_session(url))
        finally:
            server.stop()
    direct, through_flask = answers
    assert direct == through_flask
    # good calls, refusals (a condition, a missing table, a cancelled transaction) and
    # what moto fails on (an unknown operation, a body that is not JSON)
    assert [status for status, _, _ in direct] == [200, 400] + [200] * 6 + [400, 400, 500, 500]


def test_a_stop_whose_close_runs_before_its_own_wakeup_stops_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # stop() queues the close for the loop's thread and then wakes it; a worker's
    # wake-up (a response going out) can run that close first. Played here: the
    # loop is woken, runs the queued close, and only then comes stop's own wake-up.
    # It used to meet the pipe the close had shut (EBADF; a test failed so at random)
    server, url = start_moto()
    _dynamodb(url).list_tables()
    waitress = server._server
    assert waitress is not None
    trigger = waitress.trigger
    ran = threading.Event()
    handle_read, pull = trigger.handle_read, trigger._physical_pull

    def handled() -> None:
        handle_read()
        ran.set()

    def pull_after_the_close_ran() -> None:
        pull()  # another thread's wake-up
        assert ran.wait(10)
        pull()  # stop's own

    monkeypatch.setattr(trigger, "handle_read", handled)
    monkeypatch.setattr(trigger, "_physical_pull", pull_after_the_close_ran)
    server.stop()
    assert not waitress._map
    assert trigger._closed  # closed by stop itself, once nothing can pull it
    with pytest.raises(EndpointConnectionError):  # nothing listens any more
        _dynamodb(url, connect_timeout=1).list_tables()
