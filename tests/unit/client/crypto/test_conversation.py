"""Random conversations (hypothesis state machine): any interleaving of sends,
out-of-order deliveries, losses, replays, tampering and save/restore keeps both
sessions working, and nothing refused ever changes a session."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from parley.crypto import DecryptionError, IdentityKeyPair, ReplayError, Session, SkipLimitExceeded
from tests.unit.client.fakes import PreKeyStore

SIDES = st.sampled_from(["alice", "bob"])


class Conversation(RuleBasedStateMachine):
    @initialize(with_one_time=st.booleans())
    def start(self, with_one_time: bool) -> None:
        alice_identity, bob_identity = IdentityKeyPair.generate(), IdentityKeyPair.generate()
        prekeys = PreKeyStore(bob_identity)
        bundle = prekeys.bundle(with_one_time)
        alice = Session.initiate(alice_identity, bundle)
        bob, text = Session.accept(bob_identity, prekeys, alice.encrypt(b"first"))
        assert text == b"first"
        self.sessions = {"alice": alice, "bob": bob}
        # In flight towards each side: (message, plaintext).
        self.in_flight: dict[str, list[tuple[bytes, bytes]]] = {"alice": [], "bob": []}
        self.delivered: list[tuple[str, bytes]] = []

    @staticmethod
    def other(side: str) -> str:
        return "bob" if side == "alice" else "alice"

    @rule(sender=SIDES, text=st.binary(max_size=300))
    def send(self, sender: str, text: bytes) -> None:
        message = self.sessions[sender].encrypt(text)
        self.in_flight[self.other(sender)].append((message, text))

    @rule(receiver=SIDES, pick=st.integers(min_value=0))
    def deliver(self, receiver: str, pick: int) -> None:
        queue = self.in_flight[receiver]
        if not queue:
            return
        message, text = queue.pop(pick % len(queue))
        assert self.sessions[receiver].decrypt(message) == text
        self.delivered.append((receiver, message))

    @rule(receiver=SIDES, pick=st.integers(min_value=0))
    def lose(self, receiver: str, pick: int) -> None:
        queue = self.in_flight[receiver]
        if queue:
            queue.pop(pick % len(queue))

    @precondition(lambda self: bool(self.delivered))
    @rule(pick=st.integers(min_value=0))
    def replay(self, pick: int) -> None:
        receiver, message = self.delivered[pick % len(self.delivered)]
        self._refused(receiver, message)

    @rule(receiver=SIDES, pick=st.integers(min_value=0), position=st.integers(min_value=1))
    def tamper(self, receiver: str, pick: int, position: int) -> None:
        queue = self.in_flight[receiver]
        if not queue:
            return
        message, _ = queue[pick % len(queue)]
        flipped = bytearray(message)
        flipped[position % (len(message) - 1) + 1] ^= 0x40  # any byte but the version
        self._refused(receiver, bytes(flipped))

    @rule(side=SIDES)
    def save_and_restore(self, side: str) -> None:
        state = self.sessions[side].to_bytes()
        self.sessions[side] = Session.from_bytes(state)
        assert self.sessions[side].to_bytes() == state

    def _refused(self, receiver: str, message: bytes) -> None:
        session = self.sessions[receiver]
        before = session.to_bytes()
        with pytest.raises((DecryptionError, ReplayError, SkipLimitExceeded)):
            session.decrypt(message)
        assert session.to_bytes() == before

    @invariant()
    def both_sides_can_still_talk(self) -> None:
        # Checked on copies, so the conversation itself is not disturbed.
        if not hasattr(self, "sessions"):
            return
        alice = Session.from_bytes(self.sessions["alice"].to_bytes())
        bob = Session.from_bytes(self.sessions["bob"].to_bytes())
        assert bob.decrypt(alice.encrypt(b"ping")) == b"ping"
        assert alice.decrypt(bob.encrypt(b"pong")) == b"pong"


Conversation.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, print_blob=True
)
TestConversation = Conversation.TestCase
