"""What the fuzz suites share: sizes, a snapshot of everything a request could
change, and hypothesis strategies for the values Parley's inputs are made of.

Each strategy mixes values that are right (known ids, valid base64), values
that are almost right (the right shape naming nothing, one character off) and
values of any JSON type, so a run reaches past validation into the logic as
well as hammering the validation itself.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from parley_server.catalogue import Setting
from tests.conftest import REGION, FakeAws

__all__ = [
    "SIZES",
    "b64_values",
    "client_ids",
    "device_ids",
    "examples",
    "fuzz_settings",
    "json_values",
    "snapshot",
    "user_ids",
]

# Every fuzz test runs twice over: at CI size in `make test`, and scaled up under
# `make soak` (the `soak` variant; tests/reliability/conftest.py deselects it
# everywhere else).
SIZES = [
    pytest.param("ci", id="ci"),
    pytest.param("soak", id="soak", marks=pytest.mark.soak),
]


def examples(size: str, ci: int, soak: int) -> int:
    """Examples per entry point at `size`."""
    return soak if size == "soak" else ci


def fuzz_settings(max_examples: int, size: str = "ci") -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        # the `aws` world is built once per test; examples share it on purpose
        # (filter_too_much: schemathesis cannot negate every operation's every part)
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
        ],
        # CI runs are repeatable; soak runs explore
        derandomize=size != "soak",
        database=None,
    )


# -- values -----------------------------------------------------------------------------

HEX = "0123456789abcdef"

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _hex(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=HEX, min_size=size, max_size=size)


def _nearly(size: int) -> st.SearchStrategy[str]:
    """Almost an id: one short or long, upper case, or one foreign character."""
    return st.one_of(
        _hex(size - 1),
        _hex(size + 1),
        _hex(size).map(str.upper),
        st.tuples(_hex(size - 1), st.sampled_from("#g/ :\x00é")).map("".join),
    )


def user_ids(*known: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(known) if known else st.nothing(), _hex(32), _nearly(32), json_values
    )


def device_ids(*known: str, keys: bool = False) -> st.SearchStrategy[Any]:
    """Device ids; with `keys`, only strings (for the keys of a JSON object)."""
    return st.one_of(
        st.sampled_from(known) if known else st.nothing(),
        _hex(16),
        _nearly(16),
        st.text(max_size=20) if keys else json_values,
    )


client_ids = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=64),
    st.text(max_size=70),
    json_values,
)


def b64_values(max_bytes: int = 256) -> st.SearchStrategy[Any]:
    """Mostly valid base64 (of small ciphertexts), some not, some not strings."""
    valid = st.binary(min_size=1, max_size=max_bytes).map(lambda b: base64.b64encode(b).decode())
    return st.one_of(
        valid,
        valid.map(lambda s: s.rstrip("=")),  # padding dropped
        st.text(max_size=40),
        st.just(""),
        json_values,
    )


# -- what a request may change ------------------------------------------------------------

# Rate-limit counters count attempts, refused ones included: that is their job.
_SNAPSHOT_TABLES = (
    Setting.USERS_TABLE,
    Setting.CONNECTIONS_TABLE,
    Setting.MAILBOX_TABLE,
    Setting.OTP_TABLE,
    Setting.PREKEYS_TABLE,
    Setting.GROUPS_TABLE,
)


def snapshot(aws: FakeAws, *, ignore: frozenset[tuple[Setting, str]] = frozenset()) -> str:
    """Every item of every table but the rate-limit counters, every text sent and
    every media object, as one comparable string. `ignore` drops (table, attribute)
    pairs a refused request may change by design (an OTP attempt spent).

    Read from moto's backends directly: through boto3, two snapshots an example
    made up nine tenths of a fuzz run's time."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.s3.models import s3_backends
    from moto.sns import sns_backends

    dynamodb = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    tables: dict[str, list[str]] = {}
    for setting in _SNAPSHOT_TABLES:
        items = []
        for item in dynamodb.get_table(aws.settings[setting]).all_items():
            attributes = item.to_json()["Attributes"]
            kept = {k: v for k, v in attributes.items() if (setting, k) not in ignore}
            items.append(json.dumps(kept, sort_keys=True, default=str))
        tables[setting.value] = sorted(items)
    texts = len(sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages)
    bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket(aws.settings[Setting.MEDIA_BUCKET])
    keys = sorted(bucket.keys.keys())
    return json.dumps({"tables": tables, "texts": texts, "objects": keys}, sort_keys=True)
