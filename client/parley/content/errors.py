"""The errors of message content and attachment handling."""

from __future__ import annotations

from parley.errors import ParleyClientError

__all__ = ["ContentError", "MediaError"]


class MediaError(ParleyClientError):
    """Base of the errors of media handling (a ParleyClientError like every SDK error)."""


class ContentError(MediaError, ValueError):
    """Message content (or an attachment's description) is malformed."""
