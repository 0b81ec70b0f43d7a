"""local/resources.py's MotoServer: moto's app over keep-alive connections, as AWS's
endpoints answer, with room for every warm environment's connections, and a stop
that closes them all."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import boto3
import pytest
from botocore.config import Config

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
