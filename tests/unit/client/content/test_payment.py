"""UPI payment requests and their answers as content: the `upi://pay` link, what is
a VPA, an amount, a note and a reference, the JSON inside the encryption, and
hostile JSON refused with a ContentError."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from parley.content import (
    ContentError,
    Context,
    Payment,
    PaymentStatus,
    Quote,
    Target,
    encode_content,
    format_inr,
    parse_amount,
    parse_content,
    with_context,
)
from parley.content.payment import PaymentAddress, check_vpa

ASHA = "a" * 32
REF = "9f2c4e1a7b3d5c6e8f01"


def request(**changes: Any) -> Payment:
    fields: dict[str, Any] = {
        "vpa": "asha.rao@okaxis",
        "name": "Asha Rao",
        "amount": Decimal("250.00"),
        "note": "dinner",
        "ref": REF,
    }
    return Payment(**{**fields, **changes})


def quote_of(kind: str = "payment") -> Quote:
    return Quote(Target(ASHA, "m1"), kind, "💸 Asha Rao requests ₹250.00: dinner")


# -- the link -----------------------------------------------------------------------------


def test_the_link_follows_the_upi_linking_specification() -> None:
    assert request().uri() == (
        "upi://pay?pa=asha.rao@okaxis&pn=Asha%20Rao&am=250.00&cu=INR&tn=dinner&tr=" + REF
    )
    assert request(note=None).uri() == (
        "upi://pay?pa=asha.rao@okaxis&pn=Asha%20Rao&am=250.00&cu=INR&tr=" + REF
    )


def test_names_and_notes_are_percent_encoded_and_read_back_exactly() -> None:
    tricky = request(name="Ravi & Sons+Co", note="rent=½ 50% off #2 ₹ / ok?")
    link = tricky.uri()
    query = urlsplit(link).query
    assert " " not in link
    assert "+" not in query.split("&")[1]  # a space is %20, a plus %2B: never a bare +
    params = dict(parse_qsl(query.replace("+", "%2B"), strict_parsing=True))
    assert params["pn"] == "Ravi & Sons+Co"
    assert params["tn"] == "rent=½ 50% off #2 ₹ / ok?"
    assert params["pa"] == "asha.rao@okaxis"
    assert [pair.split("=")[0] for pair in query.split("&")] == ["pa", "pn", "am", "cu", "tn", "tr"]
    assert unquote(query.split("&")[1]) == "pn=Ravi & Sons+Co"


def test_a_new_request_gets_a_fresh_alphanumeric_reference() -> None:
    first = Payment("asha@okaxis", "Asha", Decimal(1))
    second = Payment("asha@okaxis", "Asha", Decimal(1))
    assert first.ref != second.ref
    assert first.ref.isalnum()
    assert 8 <= len(first.ref) <= 35


# -- VPAs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vpa", ["asha@okaxis", "9876543210@ybl", "9553267043-7@ybl", "a.b_c-d@paytm", "ab@upi"]
)
def test_these_are_vpas(vpa: str) -> None:
    assert check_vpa(vpa) == vpa
    assert request(vpa=vpa).vpa == vpa


@pytest.mark.parametrize(
    "vpa",
    [
        "",
        "asha",
        "asha@",
        "@okaxis",
        "a@okaxis",  # the name part has at least two characters
        "asha@ok axis",
        "asha@@okaxis",
        "asha@okaxis.com",
        "asha@1bank",
        ".asha@okaxis",
        "asha rao@okaxis",
        "asha@okaxis\n",
        "asha%40x@okaxis",
        "a" * 257 + "@okaxis",
        "asha@" + "b" * 65,
        None,
        42,
    ],
)
def test_these_are_not(vpa: object) -> None:
    with pytest.raises(ContentError, match="UPI ID"):
        check_vpa(vpa)
    with pytest.raises(ContentError):
        request(vpa=vpa)


# -- amounts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "amount"),
    [
        ("250", "250.00"),
        ("250.5", "250.50"),
        ("250.50", "250.50"),
        ("₹1,00,000", "100000.00"),
        ("Rs. 99.99", "99.99"),
        ("0.01", "0.01"),
        (Decimal("12.3"), "12.30"),
        (7, "7.00"),
    ],
)
def test_amounts_as_people_type_them(typed: object, amount: str) -> None:
    assert parse_amount(typed) == Decimal(amount)
    assert f"{parse_amount(typed):.2f}" == amount


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (250.0, "float"),
        (True, "float"),
        ("0", "more than"),
        ("0.00", "more than"),
        (Decimal("-5"), "more than"),
        ("-5", "not an amount"),
        ("100000.01", "at most"),
        ("1e3", "not an amount"),
        ("12.345", "not an amount"),
        (Decimal("12.345"), "two decimals"),
        (Decimal("NaN"), "two decimals"),
        (Decimal("Infinity"), "two decimals"),
        (Decimal("1E+40"), "amount"),
        ("", "not an amount"),
        ("ten", "not an amount"),
        ("1" * 50, "not an amount"),
        (None, "Decimal"),
    ],
)
def test_amounts_that_are_refused(bad: object, why: str) -> None:
    with pytest.raises(ContentError, match=why):
        parse_amount(bad)


def test_an_amount_is_shown_the_indian_way() -> None:
    assert format_inr(Decimal("250")) == "₹250.00"
    assert format_inr(Decimal("1000")) == "₹1,000.00"
    assert format_inr(Decimal("100000")) == "₹1,00,000.00"
    assert format_inr(Decimal("12345.6")) == "₹12,345.60"
    assert request(amount=Decimal("99999.99")).shown_amount == "₹99,999.99"


# -- names, notes, references ----------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"name": ""},
        {"name": "  "},
        {"name": "x" * 100},
        {"name": "Asha\nRao"},
        {"note": "x" * 51},
        {"note": "two\nlines"},
        {"note": ""},
        {"ref": "short"},
        {"ref": "has-dash-in-it"},
        {"ref": "x" * 36},
        {"ref": 12345678},
    ],
)
def test_bad_names_notes_and_references_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ContentError):
        request(**changes)
    assert request(note="x" * 50).note == "x" * 50


def test_a_payment_address_is_a_vpa_and_maybe_a_name() -> None:
    assert PaymentAddress("asha@okaxis").name is None
    with pytest.raises(ContentError):
        PaymentAddress("asha")
    with pytest.raises(ContentError):
        PaymentAddress("asha@okaxis", "\x07")


# -- the JSON inside the encryption -------------------------------------------------------------


def test_a_request_round_trips_with_its_amount_as_text() -> None:
    encoded = encode_content(request())
    assert json.loads(encoded) == {
        "v": 1,
        "kind": "payment",
        "vpa": "asha.rao@okaxis",
        "name": "Asha Rao",
        "amount": "250.00",
        "currency": "INR",
        "note": "dinner",
        "ref": REF,
    }
    assert parse_content(encoded) == request()
    timed = with_context(request(), Context(reply=quote_of("text"), timer=86400))
    assert parse_content(encode_content(timed)) == timed


def test_a_status_round_trips_as_a_reply() -> None:
    answer = with_context(PaymentStatus(REF, "paid", "412345678901"), Context(reply=quote_of()))
    encoded = json.loads(encode_content(answer))
    assert encoded["kind"] == "payment_status"
    assert (encoded["ref"], encoded["status"], encoded["txn"]) == (REF, "paid", "412345678901")
    assert encoded["ctx"]["reply"]["kind"] == "payment"
    assert parse_content(json.dumps(encoded)) == answer
    declined = with_context(PaymentStatus(REF, "declined"), Context(reply=quote_of()))
    assert parse_content(encode_content(declined)) == declined


def wire(**changes: Any) -> dict[str, Any]:
    base = json.loads(encode_content(request()))
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def status_wire(**changes: Any) -> dict[str, Any]:
    answer = with_context(PaymentStatus(REF, "paid"), Context(reply=quote_of()))
    base = json.loads(encode_content(answer))
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


HOSTILE = {
    "amount as a number": wire(amount=250.0),
    "amount as an integer": wire(amount=250),
    "amount without paise": wire(amount="250"),
    "amount with three decimals": wire(amount="250.000"),
    "amount with a leading zero": wire(amount="0250.00"),
    "amount with an exponent": wire(amount="2.5E+2"),
    "negative amount": wire(amount="-1.00"),
    "zero": wire(amount="0.00"),
    "over the UPI limit": wire(amount="100000.01"),
    "far over the UPI limit": wire(amount="9999999.00"),
    "another currency": wire(currency="USD"),
    "no currency": {k: v for k, v in wire().items() if k != "currency"},
    "no reference": {k: v for k, v in wire().items() if k != "ref"},
    "an unknown field": wire(mc="5411"),
    "a link instead of a VPA": wire(vpa="upi://pay?pa=evil@ybl"),
    "a VPA with a query in it": wire(vpa="a@b&am=1"),
    "a note with a newline": wire(note="a\nb"),
    "a forwarded request": wire(ctx={"fwd": 1}),
    "a status that is not a reply": {k: v for k, v in status_wire().items() if k != "ctx"},
    "a status quoting a text": status_wire(ctx={"reply": {**quote_of().to_dict(), "kind": "text"}}),
    "a status that is neither": status_wire(status="pending"),
    "a forwarded status": status_wire(ctx={"reply": quote_of().to_dict(), "fwd": 2}),
    "a status with a bad transaction id": status_wire(txn="12 34"),
    "a declined payment with a transaction id": status_wire(status="declined", txn="41234567"),
    "a status with an unknown field": status_wire(amount="1.00"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_json_is_refused(case: str) -> None:
    with pytest.raises(ContentError):
        parse_content(json.dumps(HOSTILE[case]))
