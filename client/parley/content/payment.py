"""UPI payment requests and their answers, inside the encryption.

A payment request asks the people of a conversation to pay the requester
through UPI, India's instant payment system. Parley moves no money and never
talks to a bank: the request carries what NPCI's UPI linking specification puts
in a `upi://pay` link (the payee's VPA and name, the amount in INR, a note and a
reference), the payer opens that link or scans its QR code in their own UPI
app, and that app makes the payment. The payer's client then answers with a
status, "paid" or "declined", as a reply to the request:

    {"v":1,"kind":"payment","vpa":"asha@okaxis","name":"Asha Rao","amount":"250.00",
     "currency":"INR","note":"dinner","ref":"9f2c4e1a7b3d5c6e8f01"}
    {"v":1,"kind":"payment_status","ref":"9f2c4e1a7b3d5c6e8f01","status":"paid",
     "txn":"412345678901","ctx":{"reply":{"author":...,"id":...,"kind":"payment",...}}}

Rules (each refused with a ContentError that says why):
- vpa: `handle@psp`, the form NPCI gives VPAs: 2-256 letters, digits, dots,
  hyphens or underscores starting with a letter or digit, "@", then the PSP's
  handle, 2-64 letters or digits starting with a letter;
- amount: rupees with exactly two decimals on the wire ("250.00"; never a float),
  more than 0 and at most ₹1,00,000, the UPI limit for a payment from one person
  to another (P2P);
- currency: "INR" (UPI moves only rupees);
- name (pn): 1-99 characters, no control characters; note (tn): at most 50;
- ref (tr) and txn: letters and digits only (NPCI refuses other characters in
  transaction ids since February 2025), 8-35 and 4-35 characters;
- a status is "paid" or "declined", a reply quoting a payment request, and is
  never forwarded; nor is a request (its VPA is the requester's own).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final, Literal
from urllib.parse import quote

from parley.content.context import Context, parse_context
from parley.content.errors import ContentError
from parley.content.fields import VERSION, check_text
from parley.content.fields import field as json_field

__all__ = [
    "CURRENCY",
    "MAX_AMOUNT",
    "MAX_NOTE_CHARS",
    "MAX_PAYEE_CHARS",
    "PAYMENT_STATUSES",
    "Payment",
    "PaymentAddress",
    "PaymentStatus",
    "check_vpa",
    "format_inr",
    "new_ref",
    "parse_amount",
]

CURRENCY: Final = "INR"
# The most one person may send another in one UPI payment (NPCI, P2P; RBI, April 2025).
MAX_AMOUNT: Final = Decimal("100000.00")
MAX_NOTE_CHARS: Final = 50
MAX_PAYEE_CHARS: Final = 99
PAYMENT_STATUSES: Final = ("paid", "declined")
PaymentStatusName = Literal["paid", "declined"]

_VPA = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,255}@[A-Za-z][A-Za-z0-9]{1,63}")
_REF = re.compile(r"[A-Za-z0-9]{8,35}")
_TXN = re.compile(r"[A-Za-z0-9]{4,35}")
# what a person types: 250, 250.5, 250.50, ₹1,00,000 (commas anywhere in the rupees)
_TYPED = re.compile(r"(?:₹|rs\.?|inr)?\s*([0-9][0-9,]*)(?:\.([0-9]{1,2}))?", re.IGNORECASE)
# the wire: exactly two decimals, no leading zeros, no sign, no exponent
_WIRE_AMOUNT = re.compile(r"(?:0|[1-9][0-9]{0,5})\.[0-9]{2}")
_CENT = Decimal("0.01")
_REQUEST_FIELDS = frozenset({"v", "kind", "vpa", "name", "amount", "currency", "ref"})
_STATUS_FIELDS = frozenset({"v", "kind", "ref", "status", "ctx"})


def check_vpa(value: object) -> str:
    """A UPI VPA (`name@psp`), or ContentError."""
    if not isinstance(value, str) or not _VPA.fullmatch(value):
        raise ContentError(f"not a UPI ID (VPA) like name@bank: {value!r:.80}")
    return value


def parse_amount(value: object) -> Decimal:
    """An amount in rupees: a Decimal, an int, or text as people type it ("250",
    "250.5", "₹1,00,000"); at most two decimals (never rounded), more than 0, at
    most MAX_AMOUNT. A float is refused: it cannot hold paise exactly."""
    if isinstance(value, bool | float):
        raise ContentError("an amount is a Decimal or text such as '250.00', not a float")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        typed = _TYPED.fullmatch(value.strip()) if len(value) <= 40 else None
        if typed is None:
            raise ContentError(f"not an amount in rupees: {value!r:.40}")
        rupees, paise = typed.group(1).replace(",", ""), typed.group(2) or "0"
        amount = Decimal(f"{rupees}.{paise}")
    else:
        raise ContentError("an amount is a Decimal or text such as '250.00'")
    try:
        if not amount.is_finite() or amount != amount.quantize(_CENT):
            raise ContentError("an amount has at most two decimals (paise)")
    except InvalidOperation as exc:  # far too many digits to quantize
        raise ContentError("not an amount in rupees") from exc
    if amount <= 0:
        raise ContentError("an amount must be more than ₹0")
    if amount > MAX_AMOUNT:
        raise ContentError(f"UPI takes at most {format_inr(MAX_AMOUNT)} in one payment")
    return amount.quantize(_CENT)


def format_inr(amount: Decimal) -> str:
    """₹ and the amount grouped the Indian way: ₹250.00, ₹1,00,000.00."""
    rupees, paise = f"{amount:.2f}".split(".")
    head, tail = rupees[:-3], rupees[-3:]
    groups: list[str] = []
    while head:
        groups.insert(0, head[-2:])
        head = head[:-2]
    return "₹" + ",".join([*groups, tail]) + "." + paise


def new_ref() -> str:
    """A fresh transaction reference: 20 random hex digits."""
    return secrets.token_hex(10)


@dataclass(frozen=True)
class PaymentAddress:
    """Where this user is paid: their VPA and the name their UPI app shows for it
    (the payee name of their requests). Kept in the profile, on this device only."""

    vpa: str
    name: str | None = None

    def __post_init__(self) -> None:
        check_vpa(self.vpa)
        if self.name is not None:
            check_text(self.name, "a payee name", max_chars=MAX_PAYEE_CHARS)


def _check_ctx(ctx: Context | None, what: str) -> None:
    if ctx is not None and ctx.forwarded:
        raise ContentError(f"a {what} cannot be forwarded")


@dataclass(frozen=True)
class Payment:
    """A request to be paid `amount` rupees through UPI, to `vpa` (whose owner is
    `name`). `uri()` is the `upi://pay` link the payer's UPI app opens."""

    vpa: str
    name: str
    amount: Decimal
    note: str | None = None
    ref: str = field(default_factory=new_ref)
    # what it replies to and its timer: set by the codec from "ctx"
    ctx: Context | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "payment"
    currency: ClassVar[str] = CURRENCY

    def __post_init__(self) -> None:
        check_vpa(self.vpa)
        check_text(self.name, "a payee name", max_chars=MAX_PAYEE_CHARS)
        object.__setattr__(self, "amount", parse_amount(self.amount))
        if self.note is not None:
            check_text(self.note, "a payment note", max_chars=MAX_NOTE_CHARS)
        if not isinstance(self.ref, str) or not _REF.fullmatch(self.ref):
            raise ContentError("a payment reference is 8 to 35 letters and digits")
        _check_ctx(self.ctx, "payment request")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": VERSION,
            "kind": self.kind,
            "vpa": self.vpa,
            "name": self.name,
            "amount": f"{self.amount:.2f}",
            "currency": CURRENCY,
        }
        if self.note is not None:
            out["note"] = self.note
        out["ref"] = self.ref
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Payment:
        if not _REQUEST_FIELDS <= set(data) <= _REQUEST_FIELDS | {"note", "ctx"}:
            raise ContentError("a payment request has vpa, name, amount, currency, ref, note?")
        if json_field(data, "currency") != CURRENCY:
            raise ContentError("a payment request is in INR")
        amount = json_field(data, "amount")
        if not isinstance(amount, str) or not _WIRE_AMOUNT.fullmatch(amount):
            raise ContentError("a payment request's amount is text with two decimals")
        return cls(
            vpa=json_field(data, "vpa"),
            name=json_field(data, "name"),
            amount=Decimal(amount),
            note=json_field(data, "note"),
            ref=json_field(data, "ref"),
        )

    def uri(self) -> str:
        """The `upi://pay` link of NPCI's UPI linking specification: pa (VPA), pn
        (payee name), am (amount), cu (INR), tn (note, if any), tr (reference).
        Values are percent-encoded (a space is %20, never +, which UPI apps would
        show as a plus); the VPA's @ stays as it is, as UPI apps expect."""
        params = [
            ("pa", quote(self.vpa, safe="@")),
            ("pn", quote(self.name, safe="")),
            ("am", f"{self.amount:.2f}"),
            ("cu", CURRENCY),
        ]
        if self.note is not None:
            params.append(("tn", quote(self.note, safe="")))
        params.append(("tr", self.ref))
        return "upi://pay?" + "&".join(f"{key}={value}" for key, value in params)

    @property
    def shown_amount(self) -> str:
        """The amount as people read it: ₹1,00,000.00."""
        return format_inr(self.amount)


@dataclass(frozen=True)
class PaymentStatus:
    """The payer's answer to the payment request with reference `ref`: "paid" (with
    the UPI transaction id from their app, `txn`, if they give it) or "declined".
    Sent as a reply quoting the request (`Client.answer_payment`)."""

    ref: str
    status: PaymentStatusName
    txn: str | None = None
    # the request it answers (ctx.reply), and its timer: set by the codec from "ctx"
    ctx: Context | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = "payment_status"

    def __post_init__(self) -> None:
        if not isinstance(self.ref, str) or not _REF.fullmatch(self.ref):
            raise ContentError("a payment reference is 8 to 35 letters and digits")
        if self.status not in PAYMENT_STATUSES:
            raise ContentError(f"a payment status is paid or declined, not {self.status!r:.20}")
        if self.txn is not None and (not isinstance(self.txn, str) or not _TXN.fullmatch(self.txn)):
            raise ContentError("a UPI transaction id is 4 to 35 letters and digits")
        if self.txn is not None and self.status != "paid":
            raise ContentError("only a payment made has a transaction id")
        _check_ctx(self.ctx, "payment status")
        reply = self.ctx.reply if self.ctx is not None else None
        if reply is not None and reply.kind != "payment":
            raise ContentError("a payment status answers a payment request")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "kind": self.kind, "ref": self.ref}
        out["status"] = self.status
        if self.txn is not None:
            out["txn"] = self.txn
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaymentStatus:
        if not _STATUS_FIELDS <= set(data) <= _STATUS_FIELDS | {"txn"}:
            raise ContentError("a payment status has ref, status, txn? and the reply it is")
        ctx = parse_context(data["ctx"])
        if ctx is None or ctx.reply is None:
            raise ContentError("a payment status is a reply to a payment request")
        return cls(
            ref=json_field(data, "ref"),
            status=json_field(data, "status"),
            txn=json_field(data, "txn"),
            ctx=ctx,
        )
