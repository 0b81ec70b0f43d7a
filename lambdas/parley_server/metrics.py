"""The service's metric names: what the handlers emit as EMF (namespace "Parley",
dimension service=parley) and what the dashboard and alarms read.

Fixed names are members of `Metric`. Two families are named by a value: one
metric per error code (`error_metric`) and one per status class of an HTTP
answer (`http_metric`); the members for them are the ones the dashboard reads.

`TRACED_LIBRARIES` is the traces' counterpart: what every function's Tracer patches.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ERROR_PREFIX", "TRACED_LIBRARIES", "Metric", "error_metric", "http_metric"]

ERROR_PREFIX = "Error_"

# The libraries the service calls out through, each call a subsegment of the trace.
# Powertools' default (every library the X-Ray SDK supports) patches botocore and,
# of the rest, only sqlite3, which nothing here uses; and it tries to import each of
# the others at every cold start.
TRACED_LIBRARIES = ("botocore",)


class Metric(StrEnum):
    """Every metric name the service emits or reads."""

    # messaging (WebSocket)
    MESSAGES_SENT = "MessagesSent"  # envelopes stored (one per recipient device)
    MESSAGES_DELIVERED = "MessagesDelivered"  # posted live by send
    MESSAGES_DUPLICATE = "MessagesDuplicate"  # retried sends already pending
    MESSAGES_ACKED = "MessagesAcked"
    SYNC_DELIVERED = "SyncDelivered"  # events posted per sync page (the backlog it found)
    SYNC_MORE_PAGES = "SyncMorePages"  # pages that ended with more waiting
    # age in seconds of the oldest envelope a sync page delivered
    SYNC_OLDEST_AGE = "SyncOldestAge"
    RECEIPTS_SENT = "ReceiptsSent"
    RECEIPTS_DELIVERED = "ReceiptsDelivered"
    RECEIPTS_ACKED = "ReceiptsAcked"
    FAN_OUT = "FanOut"  # recipient devices per 1:1 send
    PUSH_SENT = "PushSent"  # content-free wake-ups (background pushes)
    # high-priority call pushes: an ephemeral send with `ring` to a device not reached live
    CALL_PUSHES_SENT = "CallPushesSent"
    # push tokens: challenges queued for a new token (HTTP), pushed through it or not
    # (GroupFanout), tokens verified by their challenge coming back, and challenges
    # refused (wrong, expired, none waiting)
    PUSH_CHALLENGES_SENT = "PushChallengesSent"
    PUSH_CHALLENGES_PUSHED = "PushChallengesPushed"
    PUSH_CHALLENGES_UNSENT = "PushChallengesUnsent"
    PUSH_TOKENS_VERIFIED = "PushTokensVerified"
    PUSH_CHALLENGES_REFUSED = "PushChallengesRefused"
    CONNECTIONS_GONE = "ConnectionsGone"
    FRAMES_REFUSED = "FramesRefused"
    TYPING_RELAYED = "TypingRelayed"
    # group messages
    GROUP_FAN_OUT = "GroupFanOutMembers"  # members per group send
    GROUP_MESSAGES = "GroupMessagesSent"
    GROUP_JOBS_QUEUED = "GroupFanOutJobsQueued"  # slices of large groups sent to the queue
    GROUP_JOBS_DONE = "GroupFanOutJobsDone"
    GROUP_JOBS_DROPPED = "GroupFanOutJobsDropped"  # malformed jobs (never retried)
    # connections
    CONNECTS = "Connects"
    DISCONNECTS = "Disconnects"
    CONNECTION_EVENTS_FAILED = "ConnectionEventsFailed"
    CONNECT_ALLOWED = "ConnectAllowed"  # authorizer
    CONNECT_REFUSED = "ConnectRefused"  # authorizer denials
    # sign-in and accounts (HTTP)
    OTP_SENT = "OtpSent"
    # a code that could not be texted (SNS refused or failed)
    OTP_SEND_FAILED = "OtpSendFailed"
    # codes refused before any text, by the limit that refused them (POST /v1/auth/otp)
    OTP_REFUSED_COOLDOWN = "OtpRefusedCooldown"  # asked again within the cool-down
    OTP_REFUSED_SOURCE = "OtpRefusedSource"  # per source address (IPv6: per /64)
    OTP_REFUSED_PHONE_HOURLY = "OtpRefusedPhoneHourly"
    OTP_REFUSED_PHONE_DAILY = "OtpRefusedPhoneDaily"
    OTP_REFUSED_COUNTRY = "OtpRefusedCountry"  # a calling code's hourly budget
    OTP_REFUSED_GLOBAL = "OtpRefusedGlobal"  # the hourly budget of all numbers
    # a locked number (too many failed codes): codes asked for or tried, refused
    OTP_REFUSED_LOCKED = "OtpRefusedLocked"
    SIGN_UP = "SignUp"
    SIGN_IN = "SignIn"
    BUNDLES_CLAIMED = "BundlesClaimed"
    DEVICE_SIGNED_OUT = "DeviceSignedOut"
    PAIRING_STARTED = "PairingStarted"
    PAIRING_APPROVED = "PairingApproved"
    DEVICE_LINKED = "DeviceLinked"
    DEVICE_LIST_PUBLISHED = "DeviceListPublished"
    ACCOUNT_DELETED = "AccountDeleted"
    # group membership and media (HTTP)
    GROUP_CREATED = "GroupCreated"
    GROUP_MEMBERS_ADDED = "GroupMembersAdded"
    GROUP_MEMBER_REMOVED = "GroupMemberRemoved"
    GROUP_LEFT = "GroupLeft"
    GROUP_ADMIN_PROMOTED = "GroupAdminPromoted"
    GROUP_ADMIN_DISMISSED = "GroupAdminDismissed"
    GROUP_VOUCHED = "GroupVouched"  # an admin's signed statement of the whole membership
    MEDIA_UPLOADS_ISSUED = "MediaUploadsIssued"
    MEDIA_DECLARED_BYTES = "MediaDeclaredBytes"
    MEDIA_LINKS_ISSUED = "MediaLinksIssued"
    MEDIA_DELETED = "MediaDeleted"
    # calls (HTTP): ICE server sets handed out (GET /v1/calls/relays)
    CALL_RELAYS_ISSUED = "CallRelaysIssued"
    # answers by status class (http_metric)
    HTTP_2XX = "Http2xx"
    HTTP_3XX = "Http3xx"
    HTTP_4XX = "Http4xx"
    HTTP_5XX = "Http5xx"
    # answers by error code (error_metric)
    OTP_WRONG = "Error_invalid_code"  # a wrong, expired or spent code
    OTP_KILLED = "Error_too_many_attempts"
    RATE_LIMITED = "Error_rate_limited"
    DEPENDENCY_DOWN = "Error_service_unavailable"
    # requests refused by a rate limit, by limit (handlers/_refusals.py)
    SENDS_REFUSED = "SendsRefused"  # sends per device per second
    MAILBOX_QUOTA_REFUSED = "MailboxQuotaRefused"  # one user's messages to another, hourly
    RECEIPTS_REFUSED = "ReceiptsRefused"  # read receipts per device (second or minute)
    TYPING_REFUSED = "TypingRefused"  # typing frames per device (second or minute)
    BUNDLES_REFUSED = "BundleClaimsRefused"  # per caller, or per caller and target
    BUNDLES_OF_TARGET_REFUSED = "BundleClaimsOfTargetRefused"  # one person's, by everyone
    LOOKUPS_REFUSED = "LookupsRefused"  # phone lookups per account or per device
    MEDIA_FORMS_REFUSED = "MediaFormsRefused"  # upload forms per device per hour
    MEDIA_BYTES_REFUSED = "MediaBytesRefused"  # declared bytes per device per day
    CONTACT_WRITES_REFUSED = "ContactWritesRefused"  # per device per hour
    CALL_RELAYS_REFUSED = "CallRelaysRefused"  # ICE server sets per device per hour
    # one-time prekeys: devices a claim left with few (alarm on a drain), and devices
    # a claim found with none (the bundle went without one)
    PREKEYS_LOW = "PrekeysLow"
    PREKEYS_DRAINED = "PrekeysDrained"


def error_metric(code: str) -> str:
    """The metric counting answers with error `code`."""
    return f"{ERROR_PREFIX}{code}"


def http_metric(status: int) -> Metric:
    """The metric counting HTTP answers of `status`'s class."""
    return Metric(f"Http{min(max(status // 100, 2), 5)}xx")
