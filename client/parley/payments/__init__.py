"""UPI payment requests: a message asking to be paid through UPI, and the payer's
"paid" / "declined" answer as a reply to it.

Parley moves no money and never talks to a bank or to NPCI: a request carries
the `upi://pay` link of NPCI's UPI linking specification (parley.content.payment),
the payer opens it (or scans its QR code) in their own UPI app, which makes the
payment, and then says how it went. The VPA and amount travel only inside the
end-to-end encryption, like every message's content.

`rules.py` says which answers count for a request (and so its status);
`calls.py` is `PaymentCalls`, the payment methods of `parley.Client`.
"""

from __future__ import annotations

from parley.payments.rules import answer_of, latest_answers

__all__ = ["answer_of", "latest_answers"]
