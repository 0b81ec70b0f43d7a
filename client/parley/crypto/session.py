"""One Double Ratchet session with one remote device (Signal's specification).

The initiator runs X3DH from the remote device's bundle and sends "prekey
messages" (the X3DH header in front of an ordinary ratchet message) until it has
decrypted a reply. The responder builds the session from the first prekey
message with Session.accept(); later prekey messages of the same session (same
initiator identity and base key) go to Session.decrypt() like any other.

Every message is padded, encrypted with XChaCha20-Poly1305 under keys derived
from its chain's message key seed, and authenticated together with both identity
keys (sender's first) and its header. Decryption works on staged copies of what
would change and commits only once the AEAD has verified, so a bad message never
alters the session.

Replays: a message key is used once. A first message is accepted once: the
responder's PreKeySource remembers the base key of every session start it
accepted, so one replayed after its session is gone (replaced, archived away) is
refused, one-time prekey or not. Skipped message keys (kept for messages that
arrive out of order) are kept at most SKIPPED_KEY_TTL_S and at most
MAX_SKIPPED_KEYS per session, the oldest dropped first; `now` (epoch seconds) is
passed in, the clock is never read here.
"""

from __future__ import annotations

import math
import struct
import time
from collections import OrderedDict, deque
from typing import NamedTuple, Protocol

import nacl.bindings as sodium
import nacl.exceptions

from parley.crypto.errors import (
    CryptoError,
    DecryptionError,
    ReplayError,
    SkipLimitExceeded,
)
from parley.crypto.kdf import chain_step, message_keys, root_step
from parley.crypto.keys import (
    KEY_LEN,
    IdentityKeyPair,
    OneTimePreKey,
    PreKeyBundle,
    SignedPreKey,
    dh,
    ed25519_to_x25519_public,
    generate_x25519,
)
from parley.crypto.wire import (
    MAX_PLAINTEXT_LEN,
    Envelope,
    PreKeyHeader,
    encode_header,
    encode_prekey_header,
    pad,
    parse,
    unpad,
)
from parley.crypto.x3dh import initiator_keys, responder_keys

__all__ = [
    "MAX_PREVIOUS_RATCHET_KEYS",
    "MAX_SKIP",
    "MAX_SKIPPED_KEYS",
    "SKIPPED_KEY_TTL_S",
    "PreKeySource",
    "Session",
]

MAX_SKIP = 1000  # most keys one message may make us skip in one chain
MAX_SKIPPED_KEYS = 2000  # skipped message keys kept per session (libsignal's bound)
SKIPPED_KEY_TTL_S = 30 * 24 * 3600  # a skipped key is dropped this long after it was stored
MAX_PREVIOUS_RATCHET_KEYS = 32  # finished remote chains remembered to name replays as such
_MAX_COUNTER = 0xFFFF_FFFF  # n and pn travel as u32

_encrypt = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt
_decrypt = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt


class PreKeySource(Protocol):
    """The responder's prekeys, as its store keeps them."""

    def signed_prekey(self, key_id: int) -> SignedPreKey | None:
        """The current signed prekey or a previous one still in its grace period."""
        ...

    def take_one_time_prekey(self, key_id: int) -> OneTimePreKey | None:
        """The one-time prekey, which must never serve a second session.

        accept() calls this before it has authenticated the message; a store that
        wants nothing to change on a forged first message deletes the key in the
        same transaction that saves the returned session.
        """
        ...

    def note_session_start(self, base_key: bytes, signed_prekey_id: int, now: float) -> bool:
        """Remember the base key of a session start; False if it was accepted before.

        accept() calls this once the first message has authenticated, and refuses
        it as a replay on False. Keep a base key at least as long as a message can
        wait for delivery, and as long as the signed prekey it used still opens
        first messages; a store saves it in the transaction that saves the session.
        """
        ...


def _nonce(keys: tuple[bytes, bytes, bytes]) -> bytes:
    # XChaCha20 takes a 24-byte nonce: libsignal's 16-byte IV, then 8 bytes of
    # the MAC key (Poly1305 authenticates, so the MAC key has no other use).
    # Each message key encrypts exactly one message, so any fixed derivation is safe.
    return keys[2] + keys[1][:8]


_Slot = tuple[bytes, int]  # (the remote ratchet key of the chain, the message number)
_UNKNOWN = math.nan  # when a key skipped in a state saved without times was stored


def _expired(stored_at: float, now: float) -> bool:
    """A skipped key's time is up (never for an unknown time: NaN compares false)."""
    return now - stored_at >= SKIPPED_KEY_TTL_S


def _skip(
    chain: bytes, start: int, until: int, ratchet_key: bytes
) -> tuple[bytes, list[tuple[_Slot, bytes]]]:
    """Advance `chain` from index `start` to `until`, returning the seeds passed over."""
    seeds = []
    for n in range(start, until):
        chain, seed = chain_step(chain)
        seeds.append(((ratchet_key, n), seed))
    return chain, seeds


class _Staged(NamedTuple):
    """What a successful decryption changes, computed before anything is changed."""

    plaintext: bytes
    used_skipped: _Slot | None
    new_skipped: list[tuple[_Slot, bytes]]
    # On a DH ratchet step: (remote ratchet key, root key, sending private, sending
    # public, sending chain).
    ratchet: tuple[bytes, bytes, bytes, bytes, bytes] | None
    receiving_chain: bytes | None
    receiving_n: int


class Session:
    """One Double Ratchet session with one remote device."""

    __slots__ = (
        "_base_key",
        "_initiator",
        "_local_identity_key",
        "_prekey_header",
        "_previous_n",
        "_previous_ratchet_keys",
        "_receiving_chain",
        "_receiving_n",
        "_recv_ad",
        "_remote_identity_key",
        "_remote_ratchet_key",
        "_root_key",
        "_send_ad",
        "_sending_chain",
        "_sending_n",
        "_sending_private",
        "_sending_public",
        "_skipped",
    )

    def __init__(
        self,
        *,
        initiator: bool,
        local_identity_key: bytes,
        remote_identity_key: bytes,
        base_key: bytes,
        root_key: bytes,
        sending_private: bytes,
        sending_public: bytes,
        sending_chain: bytes | None,
        remote_ratchet_key: bytes | None,
        receiving_chain: bytes | None = None,
        sending_n: int = 0,
        receiving_n: int = 0,
        previous_n: int = 0,
        prekey_header: bytes | None = None,
        previous_ratchet_keys: list[bytes] | None = None,
        skipped: OrderedDict[_Slot, tuple[bytes, float]] | None = None,
    ) -> None:
        """Use initiate(), accept() or from_bytes(); this only assembles a state."""
        self._initiator = initiator
        self._local_identity_key = local_identity_key
        self._remote_identity_key = remote_identity_key
        self._base_key = base_key
        self._root_key = root_key
        self._sending_private = sending_private
        self._sending_public = sending_public
        self._sending_chain = sending_chain
        self._sending_n = sending_n
        self._remote_ratchet_key = remote_ratchet_key
        self._receiving_chain = receiving_chain
        self._receiving_n = receiving_n
        self._previous_n = previous_n
        self._prekey_header = prekey_header
        self._previous_ratchet_keys: deque[bytes] = deque(
            previous_ratchet_keys or (), maxlen=MAX_PREVIOUS_RATCHET_KEYS
        )
        # slot -> (message key seed, when it was stored); oldest first
        self._skipped: OrderedDict[_Slot, tuple[bytes, float]] = skipped or OrderedDict()
        # X3DH's AD order (sender's identity key first), fixed per direction.
        self._send_ad = local_identity_key + remote_identity_key
        self._recv_ad = remote_identity_key + local_identity_key

    # -- starting a session ---------------------------------------------------

    @classmethod
    def initiate(cls, identity: IdentityKeyPair, bundle: PreKeyBundle) -> Session:
        """X3DH as initiator from a fetched bundle (verified first: BadSignature if not)."""
        bundle.verify()
        ephemeral_private, ephemeral_public = generate_x25519()
        root, _ = initiator_keys(
            identity.dh_private_key,
            ephemeral_private,
            ed25519_to_x25519_public(bundle.identity_key),
            bundle.signed_prekey,
            bundle.one_time_prekey,
        )
        # The responder's signed prekey is its first ratchet key; ratchet once so
        # that the first messages already have a sending chain.
        sending_private, sending_public = generate_x25519()
        root, sending_chain = root_step(root, dh(sending_private, bundle.signed_prekey))
        header = PreKeyHeader(
            identity.public_key,
            ephemeral_public,
            bundle.signed_prekey_id,
            bundle.one_time_prekey_id,
        )
        return cls(
            initiator=True,
            local_identity_key=identity.public_key,
            remote_identity_key=bundle.identity_key,
            base_key=ephemeral_public,
            root_key=root,
            sending_private=sending_private,
            sending_public=sending_public,
            sending_chain=sending_chain,
            remote_ratchet_key=bundle.signed_prekey,
            prekey_header=encode_prekey_header(header),
        )

    @classmethod
    def accept(
        cls,
        identity: IdentityKeyPair,
        prekeys: PreKeySource,
        message: bytes,
        *,
        now: float | None = None,
    ) -> tuple[Session, bytes]:
        """X3DH as responder from a prekey message: the new session and the plaintext.

        Raises ReplayError for a first message whose one-time prekey is gone or
        whose base key `prekeys` has already accepted a session start with.
        """
        now = time.time() if now is None else now
        envelope = parse(message)
        header = envelope.prekey
        if header is None:
            raise DecryptionError("not a prekey message")
        signed_prekey = prekeys.signed_prekey(header.signed_prekey_id)
        if signed_prekey is None:
            raise DecryptionError(f"unknown signed prekey {header.signed_prekey_id}")
        one_time_private = None
        if header.one_time_prekey_id is not None:
            one_time = prekeys.take_one_time_prekey(header.one_time_prekey_id)
            if one_time is None:
                raise ReplayError(
                    f"one-time prekey {header.one_time_prekey_id} is unknown or already used"
                )
            one_time_private = one_time.private_key
        try:
            root, _ = responder_keys(
                identity.dh_private_key,
                signed_prekey.private_key,
                one_time_private,
                ed25519_to_x25519_public(header.identity_key),
                header.base_key,
            )
        except CryptoError as exc:
            raise DecryptionError("prekey message carries an invalid key") from exc
        session = cls(
            initiator=False,
            local_identity_key=identity.public_key,
            remote_identity_key=header.identity_key,
            base_key=header.base_key,
            root_key=root,
            # The signed prekey is the responder's first ratchet key.
            sending_private=signed_prekey.private_key,
            sending_public=signed_prekey.public_key,
            sending_chain=None,
            remote_ratchet_key=None,
        )
        staged = session._open(envelope, now)
        if not prekeys.note_session_start(header.base_key, header.signed_prekey_id, now):
            raise ReplayError("a session was already started with this base key")
        session._apply(staged, now)
        return session, staged.plaintext

    # -- messages -------------------------------------------------------------

    @property
    def remote_identity_key(self) -> bytes:
        """The remote device's Ed25519 identity key (compare it to detect a change)."""
        return self._remote_identity_key

    def started_by(self, message: bytes) -> bool:
        """True if `message` is a prekey message of this session (same initiator and base key).

        For a prekey message from a device you already have a session with: if
        this is true, decrypt() it; otherwise the sender started a new session,
        so accept() it.
        """
        try:
            header = parse(message).prekey
        except CryptoError:
            return False
        return (
            header is not None
            and not self._initiator
            and header.identity_key == self._remote_identity_key
            and header.base_key == self._base_key
        )

    def encrypt(self, plaintext: bytes) -> bytes:
        """Pad and encrypt; a prekey message until the first reply has been decrypted."""
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise ValueError(f"plaintext longer than {MAX_PLAINTEXT_LEN} bytes")
        if self._sending_chain is None:
            raise CryptoError("this session has not received its first message yet")
        if self._sending_n >= _MAX_COUNTER:
            raise CryptoError("sending chain exhausted")
        header = encode_header(
            self._prekey_header, self._sending_public, self._previous_n, self._sending_n
        )
        self._sending_chain, seed = chain_step(self._sending_chain)
        self._sending_n += 1
        keys = message_keys(seed)
        return header + _encrypt(pad(plaintext), self._send_ad + header, _nonce(keys), keys[0])

    def decrypt(self, message: bytes, *, now: float | None = None) -> bytes:
        """Decrypt a message of this session; the session changes only if it succeeds.

        Raises UnsupportedVersion, DecryptionError (malformed, forged, tampered,
        another session's prekey message), ReplayError (a key used, or skipped
        and since dropped: expired or over the bound) or SkipLimitExceeded.
        """
        now = time.time() if now is None else now
        envelope = parse(message)
        if envelope.prekey is not None and not self.started_by(message):
            raise DecryptionError("prekey message for another session")
        staged = self._open(envelope, now)
        self._apply(staged, now)
        return staged.plaintext

    # -- skipped message keys ---------------------------------------------------

    @property
    def skipped_keys(self) -> int:
        """How many skipped message keys the session holds."""
        return len(self._skipped)

    @property
    def oldest_skipped_at(self) -> float | None:
        """When the oldest skipped key was stored (None: there is none, or its time
        is unknown because the state was saved before keys carried one)."""
        times = [t for _, t in self._skipped.values()]
        if not times or any(math.isnan(t) for t in times):
            return None
        return min(times)

    def skipped_times(self) -> list[float]:
        """When each skipped key was stored, oldest first (NaN: not known yet)."""
        return [t for _, t in self._skipped.values()]

    def expire_skipped(self, now: float) -> bool:
        """Drop the skipped keys stored SKIPPED_KEY_TTL_S or more before `now`; keys
        without a time (an older saved state) count from `now`. True if any went."""
        before = len(self._skipped)
        for slot, (seed, stored_at) in list(self._skipped.items()):
            if math.isnan(stored_at):
                self._skipped[slot] = (seed, now)
            elif _expired(stored_at, now):
                del self._skipped[slot]
        return len(self._skipped) != before

    def drop_oldest_skipped(self, count: int) -> None:
        """Drop the `count` oldest skipped keys (a bound over every session)."""
        for _ in range(min(count, len(self._skipped))):
            self._skipped.popitem(last=False)

    def _open(self, envelope: Envelope, now: float) -> _Staged:
        """Decrypt without changing anything; return what to change."""
        ratchet_key = envelope.ratchet_key
        n = envelope.number
        slot = (ratchet_key, n)
        kept = self._skipped.get(slot)
        # an expired key is as good as gone: the message is refused below as a replay
        if kept is not None and not _expired(kept[1], now):
            return _Staged(self._open_with(kept[0], envelope), slot, [], None, None, 0)

        if ratchet_key == self._remote_ratchet_key:
            chain = self._receiving_chain
            if chain is None:
                raise DecryptionError("no receiving chain for this ratchet key")
            if n < self._receiving_n:
                raise ReplayError("message key already used or discarded")
            if n - self._receiving_n > MAX_SKIP:
                raise SkipLimitExceeded(f"message is {n - self._receiving_n} ahead in its chain")
            chain, skipped = _skip(chain, self._receiving_n, n, ratchet_key)
            chain, seed = chain_step(chain)
            plaintext = self._open_with(seed, envelope)
            return _Staged(plaintext, None, skipped, None, chain, n + 1)

        if ratchet_key in self._previous_ratchet_keys:
            raise ReplayError("message key already used or discarded")

        # A new remote ratchet key: keep the rest of the current chain, then step.
        skipped = []
        if self._receiving_chain is not None and self._remote_ratchet_key is not None:
            gap = envelope.previous_chain_length - self._receiving_n
            if gap > MAX_SKIP:
                raise SkipLimitExceeded(f"previous chain is {gap} ahead")
            _, skipped = _skip(
                self._receiving_chain,
                self._receiving_n,
                envelope.previous_chain_length,
                self._remote_ratchet_key,
            )
        if n > MAX_SKIP:
            raise SkipLimitExceeded(f"message is {n} ahead in a new chain")
        try:
            root, chain = root_step(self._root_key, dh(self._sending_private, ratchet_key))
        except CryptoError as exc:
            raise DecryptionError("invalid ratchet key") from exc
        chain, more = _skip(chain, 0, n, ratchet_key)
        skipped += more
        chain, seed = chain_step(chain)
        plaintext = self._open_with(seed, envelope)
        # Authenticated: prepare our next sending ratchet key and chain.
        sending_private, sending_public = generate_x25519()
        root, sending_chain = root_step(root, dh(sending_private, ratchet_key))
        ratchet = (ratchet_key, root, sending_private, sending_public, sending_chain)
        return _Staged(plaintext, None, skipped, ratchet, chain, n + 1)

    def _open_with(self, seed: bytes, envelope: Envelope) -> bytes:
        keys = message_keys(seed)
        try:
            padded = _decrypt(
                envelope.ciphertext, self._recv_ad + envelope.header, _nonce(keys), keys[0]
            )
        except nacl.exceptions.CryptoError as exc:
            raise DecryptionError("message failed authentication") from exc
        return unpad(padded)

    def _apply(self, staged: _Staged, now: float) -> None:
        if staged.used_skipped is not None:
            del self._skipped[staged.used_skipped]
        else:
            if staged.ratchet is not None:
                ratchet_key, root, private, public, sending_chain = staged.ratchet
                if self._remote_ratchet_key is not None:
                    self._previous_ratchet_keys.append(self._remote_ratchet_key)
                self._remote_ratchet_key = ratchet_key
                self._root_key = root
                self._sending_private = private
                self._sending_public = public
                self._sending_chain = sending_chain
                self._previous_n = self._sending_n
                self._sending_n = 0
            self._receiving_chain = staged.receiving_chain
            self._receiving_n = staged.receiving_n
            skipped = self._skipped
            for slot, seed in staged.new_skipped:
                skipped[slot] = (seed, now)
            while len(skipped) > MAX_SKIPPED_KEYS:
                skipped.popitem(last=False)
        self.expire_skipped(now)
        # Anything decrypted proves the responder has the session: stop sending X3DH.
        self._prekey_header = None

    # -- persistence ----------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state, private keys included: store it encrypted."""
        flags = (
            _INITIATOR * self._initiator
            | _HAS_REMOTE_RATCHET * (self._remote_ratchet_key is not None)
            | _HAS_SENDING_CHAIN * (self._sending_chain is not None)
            | _HAS_RECEIVING_CHAIN * (self._receiving_chain is not None)
            | _HAS_PREKEY_HEADER * (self._prekey_header is not None)
        )
        parts = [
            _FIXED.pack(
                _STATE_VERSION,
                flags,
                self._local_identity_key,
                self._remote_identity_key,
                self._base_key,
                self._root_key,
                self._sending_private,
                self._sending_public,
                self._sending_n,
                self._receiving_n,
                self._previous_n,
            )
        ]
        for optional in (
            self._remote_ratchet_key,
            self._sending_chain,
            self._receiving_chain,
            self._prekey_header,
        ):
            if optional is not None:
                parts.append(optional)
        parts.append(_COUNT.pack(len(self._previous_ratchet_keys)))
        parts.extend(self._previous_ratchet_keys)
        parts.append(_COUNT.pack(len(self._skipped)))
        parts.extend(
            _SKIPPED.pack(key, n, seed, stored_at)
            for (key, n), (seed, stored_at) in self._skipped.items()
        )
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, b: bytes) -> Session:
        """Restore a state saved by to_bytes(). Raises CryptoError if it is corrupt."""
        try:
            return cls._read(memoryview(b))
        except (struct.error, ValueError) as exc:
            raise CryptoError("corrupt session state") from exc

    @classmethod
    def _read(cls, b: memoryview) -> Session:
        (
            version,
            flags,
            local_identity_key,
            remote_identity_key,
            base_key,
            root_key,
            sending_private,
            sending_public,
            sending_n,
            receiving_n,
            previous_n,
        ) = _FIXED.unpack_from(b, 0)
        if version not in _SKIPPED_LAYOUTS:
            raise CryptoError(f"session state version {version} is not supported")
        # version 1 kept skipped keys without the time they were stored
        layout = _SKIPPED_LAYOUTS[version]
        if flags & ~_ALL_FLAGS:
            raise CryptoError("corrupt session state")
        offset = _FIXED.size

        def take(length: int) -> bytes:
            nonlocal offset
            if offset + length > len(b):
                raise ValueError("truncated")
            chunk = bytes(b[offset : offset + length])
            offset += length
            return chunk

        def optional(flag: int, length: int) -> bytes | None:
            return take(length) if flags & flag else None

        remote_ratchet_key = optional(_HAS_REMOTE_RATCHET, KEY_LEN)
        sending_chain = optional(_HAS_SENDING_CHAIN, KEY_LEN)
        receiving_chain = optional(_HAS_RECEIVING_CHAIN, KEY_LEN)
        prekey_header = optional(_HAS_PREKEY_HEADER, _PREKEY_HEADER_LEN)
        (count,) = _COUNT.unpack(take(_COUNT.size))
        previous = [take(KEY_LEN) for _ in range(count)]
        (count,) = _COUNT.unpack(take(_COUNT.size))
        skipped: OrderedDict[_Slot, tuple[bytes, float]] = OrderedDict()
        for _ in range(count):
            key, n, seed, *stored_at = layout.unpack(take(layout.size))
            skipped[(key, n)] = (seed, stored_at[0] if stored_at else _UNKNOWN)
        if offset != len(b):
            raise ValueError("trailing bytes")
        return cls(
            initiator=bool(flags & _INITIATOR),
            local_identity_key=local_identity_key,
            remote_identity_key=remote_identity_key,
            base_key=base_key,
            root_key=root_key,
            sending_private=sending_private,
            sending_public=sending_public,
            sending_chain=sending_chain,
            remote_ratchet_key=remote_ratchet_key,
            receiving_chain=receiving_chain,
            sending_n=sending_n,
            receiving_n=receiving_n,
            previous_n=previous_n,
            prekey_header=prekey_header,
            previous_ratchet_keys=previous,
            skipped=skipped,
        )

    def __repr__(self) -> str:
        return (
            f"Session(remote_identity_key={self._remote_identity_key.hex()}, "
            f"sent={self._sending_n}, received={self._receiving_n})"
        )


_STATE_VERSION = 2  # 2: skipped keys carry when they were stored
_INITIATOR = 0x01
_HAS_REMOTE_RATCHET = 0x02
_HAS_SENDING_CHAIN = 0x04
_HAS_RECEIVING_CHAIN = 0x08
_HAS_PREKEY_HEADER = 0x10
_ALL_FLAGS = 0x1F
_FIXED = struct.Struct(">BB32s32s32s32s32s32sIII")
_COUNT = struct.Struct(">I")
_SKIPPED = struct.Struct(">32sI32sd")  # ratchet key, n, seed, stored at (NaN: unknown)
_SKIPPED_LAYOUTS = {1: struct.Struct(">32sI32s"), _STATE_VERSION: _SKIPPED}
_PREKEY_HEADER_LEN = len(encode_prekey_header(PreKeyHeader(bytes(32), bytes(32), 0, None)))
