"""Double Ratchet throughput: encrypt + decrypt round trips per second.

Parley's Session against the `doubleratchet` package from PyPI, in the same run,
on the same plaintexts, with the same shape of work: X25519 DH ratchet, HKDF
root chain, HMAC-SHA256 message chains (0x02 next chain key, 0x01 message key),
both identity keys as associated data, 1000 skipped keys at most. The peer
package is driven through its public async API with its recommended
primitives (AES-256-CBC + HMAC-SHA256 AEAD); Parley's figure also includes
padding and encoding the message to wire bytes, which the peer leaves to callers.

Two patterns: "one-way" (a long run in one direction: symmetric steps only) and
"ping-pong" (every message changes direction: a DH ratchet step on each).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import struct
import time
from collections.abc import Callable
from importlib import metadata

from bench.report import Figure, print_table
from parley.crypto import IdentityKeyPair, OneTimePreKey, PreKeyBundle, Session, SignedPreKey

__all__ = ["main", "run"]

_PATTERNS = ("one-way", "ping-pong")


def _plaintexts(count: int) -> list[bytes]:
    # Chat-sized messages, the same for both implementations.
    rng = random.Random(2024)
    return [rng.randbytes(rng.randrange(0, 300)) for _ in range(count)]


def _sender_is_a(pattern: str, i: int) -> bool:
    return pattern == "one-way" or i % 2 == 0


class _PreKeys:
    def __init__(self, signed: SignedPreKey, one_time: OneTimePreKey) -> None:
        self.signed, self.one_time = signed, one_time

    def signed_prekey(self, key_id: int) -> SignedPreKey | None:
        return self.signed

    def take_one_time_prekey(self, key_id: int) -> OneTimePreKey | None:
        return self.one_time

    def note_session_start(self, base_key: bytes, signed_prekey_id: int, now: float) -> bool:
        return True


def _parley_round_trips(pattern: str, plaintexts: list[bytes]) -> float:
    alice_id, bob_id = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    signed = SignedPreKey.generate(bob_id, 1, 0.0)
    one_time = OneTimePreKey.generate_batch(1, 1)[0]
    bundle = PreKeyBundle(
        bob_id.public_key, 1, signed.public_key, signed.signature, 1, one_time.public_key
    )
    alice = Session.initiate(alice_id, bundle)
    bob, _ = Session.accept(bob_id, _PreKeys(signed, one_time), alice.encrypt(b"hello"))
    alice.decrypt(bob.encrypt(b"hi"))  # established: no X3DH header from here on

    start = time.perf_counter()
    for i, text in enumerate(plaintexts):
        sender, receiver = (alice, bob) if _sender_is_a(pattern, i) else (bob, alice)
        if receiver.decrypt(sender.encrypt(text)) != text:
            raise RuntimeError("round trip mismatch")
    return len(plaintexts) / (time.perf_counter() - start)


def _peer_round_trips_factory() -> Callable[[str, list[bytes]], float] | None:
    """The `doubleratchet` measurement, or None if the package is not installed."""
    try:
        from doubleratchet import DoubleRatchet
        from doubleratchet.recommended import (
            HashFunction,
            aead_aes_hmac,
            diffie_hellman_ratchet_curve25519,
            kdf_hkdf,
            kdf_separate_hmacs,
        )
        from doubleratchet.types import Header
    except ImportError:
        return None

    class Ratchet(DoubleRatchet):
        @staticmethod
        def _build_associated_data(associated_data: bytes, header: Header) -> bytes:
            return (
                associated_data
                + header.ratchet_pub
                + struct.pack(
                    ">II", header.previous_sending_chain_length, header.sending_chain_length
                )
            )

    class RootKdf(kdf_hkdf.KDF):
        @staticmethod
        def _get_hash_function() -> HashFunction:
            return HashFunction.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return b"WhisperRatchet"

    class ChainKdf(kdf_separate_hmacs.KDF):
        @staticmethod
        def _get_hash_function() -> HashFunction:
            return HashFunction.SHA_256

    class Aead(aead_aes_hmac.AEAD):
        @staticmethod
        def _get_hash_function() -> HashFunction:
            return HashFunction.SHA_256

        @staticmethod
        def _get_info() -> bytes:
            return b"WhisperMessageKeys"

    dh_class = diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet
    config = {
        "diffie_hellman_ratchet_class": dh_class,
        "root_chain_kdf": RootKdf,
        "message_chain_kdf": ChainKdf,
        "message_chain_constant": b"\x02\x01",
        "dos_protection_threshold": 1000,
        "max_num_skipped_message_keys": 1000,
        "aead": Aead,
    }

    async def measure(pattern: str, plaintexts: list[bytes]) -> float:
        ad = IdentityKeyPair.generate().public_key + IdentityKeyPair.generate().public_key
        shared_secret = random.randbytes(32)
        bob_priv = dh_class._generate_priv()
        bob_pub = dh_class._derive_pub(bob_priv)
        alice, first = await Ratchet.encrypt_initial_message(
            shared_secret=shared_secret,
            recipient_ratchet_pub=bob_pub,
            message=b"hello",
            associated_data=ad,
            **config,  # type: ignore[arg-type]
        )
        bob, _ = await Ratchet.decrypt_initial_message(
            shared_secret=shared_secret,
            own_ratchet_priv=bob_priv,
            message=first,
            associated_data=ad,
            **config,  # type: ignore[arg-type]
        )
        await alice.decrypt_message(await bob.encrypt_message(b"hi", ad), ad)

        start = time.perf_counter()
        for i, text in enumerate(plaintexts):
            sender, receiver = (alice, bob) if _sender_is_a(pattern, i) else (bob, alice)
            message = await sender.encrypt_message(text, ad)
            if await receiver.decrypt_message(message, ad) != text:
                raise RuntimeError("round trip mismatch")
        return len(plaintexts) / (time.perf_counter() - start)

    def peer(pattern: str, plaintexts: list[bytes]) -> float:
        return asyncio.run(measure(pattern, plaintexts))

    return peer


def _median(
    measure: Callable[[str, list[bytes]], float], pattern: str, texts: list[bytes], repeats: int
) -> float:
    return statistics.median(measure(pattern, texts) for _ in range(repeats))


def run(quick: bool = False) -> list[Figure]:
    count, repeats = (200, 1) if quick else (2000, 5)
    texts = _plaintexts(count)
    how = f"{count} messages of 0-299 B, median of {repeats} runs"
    peer = _peer_round_trips_factory()
    peer_name = "doubleratchet " + metadata.version("doubleratchet") if peer else "doubleratchet"
    figures = []
    for pattern in _PATTERNS:
        ours = _median(_parley_round_trips, pattern, texts, repeats)
        figures.append(Figure("ratchet", f"{pattern}: parley Session", ours, "round trips/s", how))
        if peer is None:
            figures.append(
                Figure("ratchet", f"{pattern}: {peer_name}", 0, "round trips/s", "not installed")
            )
            continue
        theirs = _median(peer, pattern, texts, repeats)
        figures.append(Figure("ratchet", f"{pattern}: {peer_name}", theirs, "round trips/s", how))
        figures.append(
            Figure("ratchet", f"{pattern}: speed-up", ours / theirs, "x", "parley / peer, same run")
        )
    return figures


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
