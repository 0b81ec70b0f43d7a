"""The `sent` document (a copy of a message for the account's other devices): it
round-trips, and anything malformed is UnsupportedContent, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.content import Location, Text
from parley.conversations import payload

BOB = "b" * 32


@pytest.mark.parametrize("content", [Text("hi"), Location(48.8584, 2.2945, "Eiffel Tower")])
def test_a_copy_round_trips(content: Any) -> None:
    copy = payload.SentCopy(BOB, "c-1", content)
    assert payload.decode_any(payload.encode_sent_copy(copy)) == copy


def _doc(**change: Any) -> bytes:
    document = {"v": 1, "kind": "sent", "to": BOB, "id": "c-1", "content": {"v": 1}}
    document["content"] = json.loads(payload.encode(Text("hi")))
    document.update(change)
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "bad",
    [
        _doc(v=2),
        _doc(to="B" * 32),
        _doc(to=None),
        _doc(id="has space"),
        _doc(id="x" * 65),
        _doc(content="hi"),
        _doc(content={"v": 1, "kind": "sent", "to": BOB, "id": "c", "content": {}}),
        _doc(content={"v": 1, "kind": "sender_key"}),
        _doc(content={"v": 1, "kind": "text"}),
        _doc(extra=1),
        _doc(id=...),
    ],
)
def test_a_malformed_copy_is_unsupported(bad: bytes) -> None:
    with pytest.raises(payload.UnsupportedContent):
        payload.decode_any(bad)


DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    "document",
    [
        DEEP,
        '{"v": 1, "kind": "text", "text": ' + DEEP + "}",
        '{"v": 1, "kind": "sent", "to": "' + BOB + '", "id": "c", "content": ' + DEEP + "}",
    ],
    ids=["bare", "in a text", "in a copy"],
)
def test_json_nested_past_the_parser_is_unsupported_not_a_crash(document: str) -> None:
    with pytest.raises(payload.UnsupportedContent):
        payload.decode_any(document.encode())
