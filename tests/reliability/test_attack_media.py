"""Attack: using an upload form for something it was not issued for.

A form from POST /v1/media is a presigned S3 POST for one object key, of
exactly the declared size, typed as opaque ciphertext, for five minutes. moto
enforces none of a POST policy (see tests/reliability/post_policy.py), so each
tampered form is judged by S3's rules against the policy the service signed:
in-process (moto, the `aws` fixture's credentials) and on a running stack.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from parley_server.catalogue import Setting
from parley_server.logic.media import DOWNLOAD_EXPIRES_S, UPLOAD_EXPIRES_S
from tests.conftest import FakeAws
from tests.integration.test_http_harness import Device, call, sign_up
from tests.reliability.post_policy import PolicyViolation, check_form, sigv4_signature
from tests.reliability.stack import Stack, http_from
from tests.reliability.stack import sign_up as sign_up_on_stack

SIZE = 4096
SECRET_KEY = "testing"  # the `aws` fixture's AWS_SECRET_ACCESS_KEY


@pytest.fixture
def alice(function_env: Any) -> Device:
    function_env("HttpApi")
    return sign_up("+14155552671")


@pytest.fixture
def form(alice: Device) -> dict[str, Any]:
    answer = call("POST", "/v1/media", body={"size": SIZE}, token=alice.access_token)
    assert answer.status == 200, answer.body
    created: dict[str, Any] = answer.body
    return created


def _judge(aws: FakeAws, fields: dict[str, str], size: int = SIZE, **kw: Any) -> None:
    check_form(
        fields, bucket=aws.settings[Setting.MEDIA_BUCKET], size=size, secret_key=SECRET_KEY, **kw
    )


def test_the_form_as_issued_is_accepted(aws: FakeAws, form: dict[str, Any]) -> None:
    _judge(aws, form["upload"]["fields"])  # the control: the judge is not simply strict


@pytest.mark.parametrize(
    "key",
    [
        "m/{other}/{media_id}",  # someone else's object
        "m/{me}/{other}",  # another object of mine
        "m/{me}/{media_id}x",  # a longer key with the same start
        "{media_id}",  # outside the media prefix
    ],
)
def test_the_form_cannot_write_any_other_key(
    aws: FakeAws, alice: Device, form: dict[str, Any], key: str
) -> None:
    fields = dict(form["upload"]["fields"])
    fields["key"] = key.format(me=alice.user_id, other="0" * 32, media_id=form["media_id"])

    with pytest.raises(PolicyViolation, match="key"):
        _judge(aws, fields)


@pytest.mark.parametrize("size", [0, SIZE - 1, SIZE + 1, 100 * SIZE])
def test_the_form_cannot_write_another_size(aws: FakeAws, form: dict[str, Any], size: int) -> None:
    with pytest.raises(PolicyViolation, match="outside"):
        _judge(aws, form["upload"]["fields"], size=size)


def test_the_form_cannot_change_the_type_s3_serves_the_object_as(
    aws: FakeAws, form: dict[str, Any]
) -> None:
    fields = {**form["upload"]["fields"], "Content-Type": "text/html"}

    with pytest.raises(PolicyViolation, match="content-type"):
        _judge(aws, fields)


def test_extra_fields_such_as_a_public_acl_are_refused(aws: FakeAws, form: dict[str, Any]) -> None:
    fields = {**form["upload"]["fields"], "acl": "public-read"}

    with pytest.raises(PolicyViolation, match="acl"):
        _judge(aws, fields)


def test_the_form_is_dead_after_five_minutes(aws: FakeAws, form: dict[str, Any]) -> None:
    issued = datetime.now(UTC)
    _judge(aws, form["upload"]["fields"], now=issued + timedelta(seconds=UPLOAD_EXPIRES_S - 5))

    with pytest.raises(PolicyViolation, match="expired"):
        _judge(aws, form["upload"]["fields"], now=issued + timedelta(seconds=UPLOAD_EXPIRES_S + 1))


def test_a_policy_rewritten_by_the_holder_no_longer_matches_its_signature(
    aws: FakeAws, form: dict[str, Any]
) -> None:
    fields = dict(form["upload"]["fields"])
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"] = [
        ["starts-with", "$key", "m/"] if isinstance(c, dict) and "key" in c else c
        for c in policy["conditions"]
    ]
    fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    fields["key"] = "m/" + "0" * 32 + "/anything"

    with pytest.raises(PolicyViolation, match="signature"):
        _judge(aws, fields)
    # only the holder of the secret key could sign it
    assert fields["x-amz-signature"] != sigv4_signature(
        SECRET_KEY, fields["x-amz-credential"], fields["policy"]
    )


def test_the_download_link_names_one_object_for_five_minutes(
    alice: Device, form: dict[str, Any]
) -> None:
    upload = form["upload"]
    posted = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("b", b"\x00" * SIZE)}, timeout=10
    )
    assert posted.status_code == 204

    link = call("GET", f"/v1/media/{form['media_id']}", token=alice.access_token).body["url"]

    parsed = urlparse(link)
    query = parse_qs(parsed.query)
    assert parsed.path.endswith(f"/m/{alice.user_id}/{form['media_id']}")
    assert query["X-Amz-Expires"] == [str(DOWNLOAD_EXPIRES_S)]
    # the object key is inside what is signed (SigV4 signs the canonical path)
    assert "host" in query["X-Amz-SignedHeaders"][0]


async def test_the_running_stack_issues_forms_scoped_the_same_way(stack: Stack) -> None:
    alice = await sign_up_on_stack(stack)
    async with (
        http_from() as http,
        http.post(stack.http_url + "/v1/media", json={"size": SIZE}, headers=alice.auth) as r,
    ):
        created = await r.json()
    fields = created["upload"]["fields"]
    judge = {"bucket": "parley-local-media", "size": SIZE, "secret_key": "local"}
    check_form(fields, **judge)

    for tampered in (
        {**fields, "key": f"m/{'0' * 32}/{created['media_id']}"},
        {**fields, "Content-Type": "text/html"},
    ):
        with pytest.raises(PolicyViolation):
            check_form(tampered, **judge)
    with pytest.raises(PolicyViolation):
        check_form(fields, **{**judge, "size": SIZE + 1})
