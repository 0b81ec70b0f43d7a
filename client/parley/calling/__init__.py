"""Voice and video calls: one person to one person, end-to-end encrypted.

Signalling (offer, answer, ICE candidates, ringing, busy, hang-up) travels inside
the Double Ratchet like any message (parley.content.calls), as ephemeral sends the
service keeps for seconds; media flows peer to peer over DTLS-SRTP (aiortc), its
certificate checked against the fingerprint the signals carried, through a TURN
relay when the two cannot reach each other. Group calls are not supported.

- `manager.Calls`: every call of one device, what arrives and what the user does;
- `call.Call`: one call, as the application holds it;
- `signalling.Signaller`: sealing and queueing signals;
- `relays`: the ICE servers the service hands out;
- `media.MediaSession` and `audio`: the WebRTC side (the calls extra:
  `pip install './client[calls]'`; nothing here imports it until a call starts);
- `facade.PhoneCalls`: `Client.call`, `current_call`, `call_log`.
"""

from parley.calling.call import Call, CallRefused, CallsUnavailable

__all__ = ["Call", "CallRefused", "CallsUnavailable"]
