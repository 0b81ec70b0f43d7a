"""Which metric counts a refusal by a rate limit: `RateLimited.limit` (the name a
logic function gave `RateLimiter.hit`) to its member of `Metric`. HTTP and
WebSocket answers both count through `refusal_metric`; the sign-in limits have
their own metrics (handlers/http_api.py)."""

from __future__ import annotations

from parley_server.metrics import Metric
from parley_server.models.errors import ParleyError, RateLimited

__all__ = ["REFUSALS", "refusal_metric"]

REFUSALS: dict[str, Metric] = {
    "send": Metric.SENDS_REFUSED,
    "mail-to": Metric.MAILBOX_QUOTA_REFUSED,
    "receipts-s": Metric.RECEIPTS_REFUSED,
    "receipts-min": Metric.RECEIPTS_REFUSED,
    "typing-s": Metric.TYPING_REFUSED,
    "typing-min": Metric.TYPING_REFUSED,
    "bundles": Metric.BUNDLES_REFUSED,
    "bundles-target": Metric.BUNDLES_REFUSED,
    "bundles-of": Metric.BUNDLES_OF_TARGET_REFUSED,
    "lookups": Metric.LOOKUPS_REFUSED,
    "lookups-device": Metric.LOOKUPS_REFUSED,
    "media-forms": Metric.MEDIA_FORMS_REFUSED,
    "media-bytes": Metric.MEDIA_BYTES_REFUSED,
    "contacts": Metric.CONTACT_WRITES_REFUSED,
    "call-relays": Metric.CALL_RELAYS_REFUSED,
}


def refusal_metric(error: ParleyError) -> Metric | None:
    """The metric counting `error`, if it is a refusal by one of the limits above."""
    if isinstance(error, RateLimited):
        return REFUSALS.get(error.limit)
    return None
