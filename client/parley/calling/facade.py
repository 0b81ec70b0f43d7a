"""The call methods of `parley.Client`: place a call, see the one in progress,
read the call log."""

from __future__ import annotations

from typing import Any

from parley.calling.call import Call
from parley.calling.manager import Calls
from parley.facade import ProfileFacade
from parley.models import CallRecord, Contact

__all__ = ["PhoneCalls"]


class PhoneCalls(ProfileFacade):
    """Voice and video calls, for a facade with a `Calls` (`parley.calling`)."""

    @property
    def _phone(self) -> Calls:
        raise NotImplementedError

    def contact(self, key: str | Contact) -> Contact:
        raise NotImplementedError

    async def call(
        self,
        contact: str | Contact,
        *,
        video: bool = False,
        audio: Any = None,
        sink: Any = None,
        video_source: Any = None,
        video_sink: Any = None,
        relay_only: bool | None = None,
    ) -> Call:
        """Call `contact` (a name, phone, user id or Contact): every device of theirs
        rings. `audio` is what this side plays (an aiortc audio track, e.g.
        `parley.calling.audio.Tone(440)`, `WavFile(path)`, `Microphone()`; silence by
        default), `sink` where what they say goes (`Capture()`, `Recorder(path)`,
        `Speaker()`; dropped by default). `video=True` adds VP8 video
        (`video_source` defaults to a test pattern). `relay_only=True` keeps this
        device's network addresses from them (media through the service's TURN relay;
        the default does so for people you do not know). Returns at once; the call's
        state and its end come as events and through `Call.wait_state`/`wait_ended`.
        Needs the calls extra: pip install './client[calls]'."""
        return await self._phone.place(
            self.contact(contact),
            video=video,
            audio=audio,
            sink=sink,
            video_source=video_source,
            video_sink=video_sink,
            relay_only=relay_only,
        )

    def current_call(self) -> Call | None:
        """The call this device is in (or ringing for), if any."""
        return self._phone.current()

    def call_log(self, limit: int = 50) -> list[CallRecord]:
        """This device's calls, newest first: outgoing, incoming, missed."""
        return self.store.calls.listed(limit)
