"""Fuzzing every HTTP route through the HttpApi handler, in-process (moto, the
function's exact environment, real tokens).

For every request hypothesis makes to a route (path parameters, query, token,
body, all drawn from values right, nearly right and of any type):
- the answer is never a 5xx;
- an error has the wire's shape, {"error": {"code", "message"}};
- a refused request (4xx) changes nothing: tables, texts sent, media objects.
  The one change a refusal may make by design is the attempt it spends on a
  live one-time code (a wrong code counts; that is the brute-force defence).
The number of requests run per route is printed with the run's figures.
"""

from __future__ import annotations

import json
import re
import string
import uuid
from base64 import b64decode
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from parley_server.catalogue import HTTP_ROUTES, Setting
from parley_server.logic.group_changes import KINDS, canonical, change_hash
from tests.conftest import FakeAws
from tests.group_changes import body_of, signed_body
from tests.integration.test_http_harness import (
    Answer,
    Device,
    b64,
    call,
    create_group,
    group_change,
    sign_up,
    sms_code,
    with_keys,
)
from tests.reliability.figures import FIGURES
from tests.reliability.fuzzing import (
    SIZES,
    b64_values,
    examples,
    fuzz_settings,
    json_values,
    snapshot,
    user_ids,
)

CI, SOAK = 100, 1000  # requests per route
ATTEMPTS = frozenset({(Setting.OTP_TABLE, "attempts"), (Setting.OTP_TABLE, "wrong")})
PHONES = ("+14155552671", "+12025550123", "+447700900123", "+13105550142")


@dataclass
class World:
    aws: FakeAws
    alice: Device
    bob: Device
    group_id: str
    media_id: str


@pytest.fixture
def world(aws: FakeAws, function_env: Any) -> World:
    function_env("HttpApi")
    alice = with_keys(sign_up(PHONES[0]), otk_ids=range(50))
    bob = with_keys(sign_up(PHONES[1]))
    group = create_group(alice, [bob.user_id], name="g")
    assert group.status in (200, 201), group.body
    media = call("POST", "/v1/media", body={"size": 10}, token=alice.access_token)
    assert media.status == 200, media.body
    upload = media.body["upload"]
    posted = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("b", b"0123456789")}, timeout=10
    )
    assert posted.status_code == 204
    return World(aws, alice, bob, group.body["group_id"], media.body["media_id"])


# -- strategies --------------------------------------------------------------------------

PATH_TEXT = st.text(
    alphabet=string.ascii_letters + string.digits + "-_.~%:@!$&'()*+,;=é", min_size=1, max_size=40
)
phones = st.one_of(
    st.sampled_from(PHONES),
    st.sampled_from(["+19005550123", "+18005550199", "+1 (415) 555-2671", "+44 7700 900123"]),
    st.from_regex(r"\+[0-9]{1,15}", fullmatch=True),
    st.text(max_size=40),
    json_values,
)
codes = st.one_of(st.from_regex(r"[0-9]{6}", fullmatch=True), st.text(max_size=10), json_values)


def _key_upload(identity: SigningKey) -> st.SearchStrategy[Any]:
    """Key uploads: some correctly signed by the device's identity key, most not."""

    def signed(spk: bytes, key_id: int, otks: list[tuple[int, bytes]]) -> dict[str, Any]:
        return {
            "identity_key": b64(identity.verify_key.encode()),
            "signed_prekey": {
                "key_id": key_id,
                "public_key": b64(spk),
                "signature": b64(identity.sign(spk).signature),
            },
            "one_time_prekeys": [{"key_id": i, "public_key": b64(k)} for i, k in otks],
        }

    b32 = st.binary(min_size=32, max_size=32)
    key_ids = st.one_of(st.integers(0, 2**31 - 1), st.integers(), json_values)
    return st.one_of(
        st.builds(
            signed,
            b32,
            st.integers(0, 2**31 - 1),
            st.lists(st.tuples(st.integers(0, 2**31 - 1), b32), max_size=5),
        ),
        st.fixed_dictionaries(
            {},
            optional={
                "identity_key": st.one_of(b32.map(b64), st.text(max_size=60), json_values),
                "signed_prekey": st.one_of(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "key_id": key_ids,
                            "public_key": st.one_of(b32.map(b64), json_values),
                            "signature": st.one_of(
                                st.binary(min_size=64, max_size=64).map(b64), json_values
                            ),
                        },
                    ),
                    json_values,
                ),
                "one_time_prekeys": st.one_of(
                    st.lists(
                        st.fixed_dictionaries({"key_id": key_ids, "public_key": b32.map(b64)}),
                        max_size=3,
                    ),
                    json_values,
                ),
            },
        ),
    )


def _signed_now(world: World, kind: str, members: list[str], admins: list[str]) -> Any:
    """Alice's change of `kind`, signed for her group as it is when drawn (a GET: it
    changes nothing), so that some are accepted; after a change that ended her place
    in it, one for an empty chain."""
    read = call("GET", f"/v1/groups/{world.group_id}", token=world.alice.access_token)
    rev, head, prev = 1, 0, b""
    if read.status == 200:
        rev, head = read.body["rev"], read.body["head"]
        if kind == "vouch":
            members, admins = read.body["members"], read.body["admins"]
    if head:
        chain = call(
            "GET",
            f"/v1/groups/{world.group_id}",
            query={"changes_after": str(head - 1)},
            token=world.alice.access_token,
        )
        prev = change_hash(b64decode(chain.body["changes"][-1]["body"]))
    return group_change(
        world.alice, kind, world.group_id, seq=rev + 1, prev=prev, members=members, admins=admins
    )


def _changes(world: World) -> st.SearchStrategy[Any]:
    """Signed changes to Alice's group: some right, most wrong in a field or two."""
    bob = world.bob.user_id
    right = st.one_of(
        st.builds(_signed_now, st.just(world), st.just("add"), st.just([bob]), st.just([])),
        st.builds(
            _signed_now,
            st.just(world),
            st.sampled_from(["remove", "promote", "dismiss"]),
            st.just([bob]),
            st.just([]),
        ),
        st.builds(_signed_now, st.just(world), st.just("vouch"), st.just([]), st.just([])),
    )
    fields = st.fixed_dictionaries(
        {
            "group_id": st.one_of(st.just(world.group_id), user_ids()),
            "seq": st.one_of(st.integers(-1, 6), json_values),
            "prev": st.one_of(st.just(b""), st.binary(min_size=32, max_size=32)),
            "author": st.one_of(st.just(world.alice.user_id), user_ids(bob)),
            "device": st.one_of(st.just(world.alice.device_id), st.text(max_size=17)),
            "kind": st.one_of(
                st.sampled_from(KINDS),
                json_values,
            ),
            "name": st.one_of(st.just(""), st.text(max_size=20), json_values),
            "members": st.lists(user_ids(bob, world.alice.user_id), max_size=3),
            "admins": st.one_of(st.just([]), st.lists(user_ids(world.alice.user_id), max_size=2)),
        }
    )
    wrong = fields.map(
        lambda f: {"change": signed_body(world.alice.identity, canonical(body_of(**f)))}
    )
    mangled = st.fixed_dictionaries(
        {
            "change": st.one_of(
                st.fixed_dictionaries(
                    {"body": b64_values(200), "signature": b64_values(64)},
                    optional={"extra": json_values},
                ),
                json_values,
            )
        }
    )
    return st.one_of(right, wrong, mangled)


def _creates(world: World) -> st.SearchStrategy[Any]:
    """Signed creates by Alice: fresh ids, names of any text, members right or not."""

    def create(name: str, members: list[str]) -> Any:
        return group_change(
            world.alice,
            "create",
            uuid.uuid4().hex,
            seq=1,
            prev=b"",
            name=name,
            members=sorted(set(members)),
        )

    return st.builds(
        create,
        st.text(min_size=1, max_size=30),
        st.lists(st.sampled_from([world.bob.user_id]), max_size=1),
    )


def _bodies(world: World) -> dict[str, st.SearchStrategy[Any]]:
    people = user_ids(world.alice.user_id, world.bob.user_id)
    well_formed = {
        "POST /v1/groups": _creates(world),
        "POST /v1/media": st.fixed_dictionaries({"size": st.integers(1, 10**6)}),
        "PUT /v1/push": st.fixed_dictionaries(
            {
                "platform": st.sampled_from(["fcm", "apns"]),
                "token": st.text(
                    alphabet=string.ascii_letters + string.digits, min_size=1, max_size=100
                ),
            }
        ),
    }
    fuzzed = {
        "POST /v1/auth/otp": st.fixed_dictionaries({"phone": phones}),
        "POST /v1/auth/verify": st.fixed_dictionaries(
            {"phone": st.one_of(st.sampled_from(PHONES), phones), "code": codes}
        ),
        "POST /v1/auth/refresh": st.fixed_dictionaries(
            {
                "refresh_token": st.one_of(
                    st.text(
                        alphabet=string.ascii_letters + string.digits + "-_",
                        min_size=43,
                        max_size=43,
                    ),
                    st.text(max_size=300),
                    json_values,
                )
            }
        ),
        "PUT /v1/keys": _key_upload(world.alice.identity),
        "PUT /v1/push": st.fixed_dictionaries(
            {
                "platform": st.one_of(st.sampled_from(["fcm", "apns", "web"]), json_values),
                "token": st.one_of(st.text(min_size=1, max_size=80), json_values),
            }
        ),
        "POST /v1/push/verify": st.fixed_dictionaries(
            {
                "challenge": st.one_of(
                    st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=40),
                    st.text(max_size=200),
                    json_values,
                )
            }
        ),
        "POST /v1/media": st.fixed_dictionaries(
            {"size": st.one_of(st.integers(-10, 200 * 1024 * 1024), json_values)}
        ),
        "PUT /v1/settings/presence": st.fixed_dictionaries(
            {
                "last_seen": st.one_of(
                    st.sampled_from(["nobody", "contacts", "everybody", "x"]), json_values
                )
            }
        ),
        "POST /v1/groups": st.one_of(
            _changes(world),
            st.fixed_dictionaries(
                {
                    "name": st.one_of(st.text(max_size=80), json_values),
                    "members": st.one_of(st.lists(people, max_size=3), json_values),
                }
            ),
        ),
        "POST /v1/groups/{group_id}/changes": _changes(world),
    }
    return {
        route: st.one_of(well_formed[route], body) if route in well_formed else body
        for route, body in fuzzed.items()
    }


def _path_value(world: World, name: str) -> st.SearchStrategy[str]:
    known = {
        "user_id": (world.alice.user_id, world.bob.user_id, "f" * 32),
        "group_id": (world.group_id, "e" * 32),
        "media_id": (world.media_id, "d" * 32),
        # not Alice's or Bob's own device: signing one out would leave every later
        # request unauthenticated (tests/integration/test_http_devices.py signs out)
        "device_id": ("0123456789abcdef", "f" * 16, world.alice.device_id.upper()),
        # pairings no one started (well-formed or not): every route must refuse them the same
        # way; the whole flow with real pairings is tests/integration/test_http_linking.py
        "ref": ("c" * 32, "f" * 32, "C" * 32),
    }[name]
    return st.one_of(st.sampled_from(known), PATH_TEXT)


def _requests(world: World, route: str) -> st.SearchStrategy[dict[str, Any]]:
    method, template = route.split(" ", 1)
    names = re.findall(r"\{(\w+)\}", template)
    body = _bodies(world).get(route)
    any_body = st.one_of(json_values.map(json.dumps), st.text(max_size=60))
    tokens = st.sampled_from(
        [world.alice.access_token, world.alice.access_token, world.bob.access_token, None, "junk"]
    )

    def build(
        params: list[str], token: str | None, payload: Any, raw: str | None, query: Any, source: str
    ) -> dict[str, Any]:
        path = template
        for name, value in zip(names, params, strict=True):
            path = path.replace("{" + name + "}", value)
        request: dict[str, Any] = {
            "method": method,
            "path": path,
            "token": token,
            "source_ip": source,
        }
        if raw is not None:
            request["raw"] = raw
        elif payload is not None:
            request["body"] = payload
        if query is not None:
            request["query"] = query
        return request

    return st.builds(
        build,
        st.tuples(*(_path_value(world, n) for n in names)).map(list),
        tokens,
        body if body is not None else st.none(),
        # now and then a body of any JSON, or not JSON, instead of the route's own
        st.one_of(st.none(), st.none(), st.none(), any_body),
        _query(route),
        st.sampled_from([f"203.0.113.{n}" for n in range(1, 9)]),
    )


def _query(route: str) -> st.SearchStrategy[Any]:
    if route == "GET /v1/users":
        return st.one_of(
            st.none(), st.fixed_dictionaries({"phone": phones.filter(lambda p: isinstance(p, str))})
        )
    if route == "GET /v1/groups/{group_id}":
        after = st.one_of(
            st.integers(-3, 12).map(str),
            st.sampled_from(["9999999999", "10000000000", "1e3", " 1", ""]),
            st.text(max_size=12),
        )
        return st.one_of(st.none(), st.fixed_dictionaries({"changes_after": after}))
    return st.none()


def _refused_shape(answer: Answer) -> None:
    assert isinstance(answer.body, dict), answer.body
    error = answer.body.get("error")
    assert isinstance(error, dict), answer.body
    assert isinstance(error.get("code"), str)
    assert error["code"]
    assert isinstance(error.get("message"), str)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", HTTP_ROUTES)
def test_an_http_route_survives_fuzzing_and_its_refusals_change_nothing(
    world: World, route: str, size: str
) -> None:
    runs = {"accepted": 0, "refused": 0}
    # built once: a strategy built anew at each example was validated anew, half the run
    requests_of_route = _requests(world, route)

    @fuzz_settings(examples(size, CI, SOAK), size)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        request = data.draw(requests_of_route, label="request")
        if route == "POST /v1/auth/verify" and data.draw(st.booleans(), label="right code"):
            request = _with_the_right_code(request, data.draw(st.integers(1, 250), label="from"))
        before = snapshot(world.aws)

        answer = call(**request)

        assert answer.status < 500, (answer.status, answer.body)
        if answer.status >= 400:
            runs["refused"] += 1
            _refused_shape(answer)
            ignore = (
                ATTEMPTS
                if answer.code in ("invalid_code", "too_many_attempts", "number_locked")
                else frozenset()
            )
            assert snapshot(world.aws, ignore=ignore) == snapshot_of(before, ignore), answer.body
        else:
            runs["accepted"] += 1

    def snapshot_of(text: str, ignore: frozenset[tuple[Setting, str]]) -> str:
        if not ignore:
            return text
        loaded = json.loads(text)
        for setting, attribute in ignore:
            items = [json.loads(i) for i in loaded["tables"][setting.value]]
            loaded["tables"][setting.value] = sorted(
                json.dumps({k: v for k, v in i.items() if k != attribute}, sort_keys=True)
                for i in items
            )
        return json.dumps(loaded, sort_keys=True)

    run()
    for outcome, count in runs.items():
        FIGURES.record("fuzz requests run in-process (hypothesis)", f"{route} {outcome}", count)


def _with_the_right_code(request: dict[str, Any], source: int) -> dict[str, Any]:
    """The drawn verify, for a phone that was just texted a code, with that code."""
    body = request.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("phone"), str):
        return request
    # asking is the setup of this example, not what it tests (it may be refused: cool-down)
    call("POST", "/v1/auth/otp", body={"phone": body["phone"]}, source_ip=f"198.18.0.{source}")
    try:
        code = sms_code(body["phone"])
    except AssertionError:  # nothing was ever texted to it (not a number that gets codes)
        return request
    return {**request, "body": {**body, "code": code}}
