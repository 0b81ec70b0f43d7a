"""What reactions, edits, deletes for everyone and disappearing timers do to the
messages stored on this device, the same on every device of the conversation.

Every path that stores a message row calls `on_stored` right after the row is
new (a message or action received, a copy from another of our devices, our own
outgoing message or action): an action is applied to its target, or held until
the target arrives; a shown message releases what was held for it. A row is new
once per (sender, client id), so each action applies exactly once, however
often the service delivers it. Order does not matter: an edit applies only if
it is newer (server time) than the last one applied, a reaction only if newer
than that person's last, and a delete is final.

The rules (`RULES`), checked by every receiving device and by the sender's
client before it sends:
- only a message's author edits it (a text, within `edit_window_s` of sending)
  or deletes it for everyone (within `delete_window_s`); in a group, an admin
  may also delete anyone's message for everyone (shown as such);
- one reaction per person per message (a newer one replaces it; "" removes it);
- an action must be of the conversation its target is in;
- in a group only an admin changes the disappearing timer; in a chat, either person;
- what breaks a rule is dropped and logged; an action whose target never
  arrives is dropped after `hold_s`, and one person may have at most
  `max_held_per_sender` waiting (more are dropped).

Disappearing: a message carries its timer (`ctx.timer`); an outgoing one's
runs from when it is sent, an incoming one's from when it is read (`start_read`);
`sweep` erases what ran out, with its file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from parley.content import (
    Delete,
    Edit,
    PaymentStatus,
    Reaction,
    Text,
    TimerChange,
    with_context,
)
from parley.ids import group_id_of
from parley.models import (
    Direction,
    Event,
    Message,
    MessageDeleted,
    MessageDisappeared,
    MessageEdited,
    MessageState,
    ReactionChanged,
    TimerChanged,
)
from parley.payments.events import answered
from parley.store import Store

__all__ = [
    "ACTIONS_NOT_SHOWN",
    "ADMIN_DELETED",
    "DELETED",
    "RULES",
    "ActionRules",
    "AdminCheck",
    "nobody",
    "on_sent",
    "on_stored",
    "start_read",
    "sweep",
]

log = logging.getLogger("parley.conversations")

DELETED = "This message was deleted"
# what is stored but never shown as a message of its own
ACTIONS_NOT_SHOWN = frozenset({"reaction", "edit", "delete"})
ADMIN_DELETED = "This message was deleted by an admin"


# (group id, user id) -> whether the group's signed chain makes them a trusted admin:
# parley.groups.admins.signed_admin over the store (this slice cannot read chains)
AdminCheck = Callable[[str, str], bool]


def nobody(_group_id: str, _user_id: str) -> bool:
    """No admin anywhere: a chat's messages (no group to be admin of)."""
    return False


@dataclass(frozen=True)
class ActionRules:
    edit_window_s: int = 15 * 60
    delete_window_s: int = 48 * 3600
    hold_s: int = 7 * 24 * 3600
    # actions one person may have waiting for messages not here yet
    max_held_per_sender: int = 200


RULES = ActionRules()


def on_stored(
    store: Store, me: str, message: Message, *, now: float, admins: AdminCheck = nobody
) -> list[Event]:
    """Apply `message` (a row just stored) if it is an action, or release the actions
    held for it if it is a shown message. Runs inside the caller's transaction."""
    content = message.content
    if isinstance(content, Edit | Delete) and _ours_unsent(message):
        return []  # it takes effect when the service has it (on_sent), at its time
    if isinstance(content, Reaction | Edit | Delete):
        target = store.messages.find(content.target)
        if target is None:
            if store.messages.held_from(message.sender) >= RULES.max_held_per_sender:
                log.warning("dropped an action of %s: too many wait already", message.sender)
                store.messages.forget(message.id)
                return []
            store.messages.hold(message.id, content.target, now)
            return []
        return _apply(store, me, message, target, now=now, admins=admins)
    events: list[Event] = []
    if isinstance(content, TimerChange):
        events += _timer(store, message, content, admins)
    elif message.direction is Direction.OUT and message.timer:
        # ours (from here or another of our devices): it runs from when it was sent
        sent_at = min(message.ts, int(now * 1000))
        store.messages.start_timer(message.id, sent_at + message.timer * 1000)
    if isinstance(content, PaymentStatus):
        events += answered(store, message)
    held = store.messages.held_for(message.target)
    if held:
        store.messages.unhold([action.id for action in held])
        for action in held:
            current = store.messages.get(message.sender, message.client_id)
            if current is None:
                break
            events += _apply(store, me, action, current, now=now, admins=admins)
    return events


def _ours_unsent(message: Message) -> bool:
    return message.direction is Direction.OUT and message.state is MessageState.PENDING


def on_sent(
    store: Store, me: str, message: Message, *, now: float, admins: AdminCheck = nobody
) -> list[Event]:
    """The service took an action of ours (`message.ts` its time now): an edit or a
    delete is applied by the same rules as on every other device (one sent too
    late for its window is dropped here as there); a reaction or a timer change,
    applied when made, keeps the service's time from now on."""
    content = message.content
    if isinstance(content, Edit | Delete):
        target = store.messages.find(content.target)
        if target is None:
            return []
        return _apply(store, me, message, target, now=now, admins=admins)
    if isinstance(content, Reaction):
        target = store.messages.find(content.target)
        if target is not None:
            store.messages.restamp_reaction(target.id, me, content.emoji, message.ts)
    elif isinstance(content, TimerChange):
        store.messages.restamp_timer(message.peer, me, content.seconds, message.ts)
    return []


def _apply(
    store: Store,
    me: str,
    action: Message,
    target: Message,
    *,
    now: float,
    admins: AdminCheck,
) -> list[Event]:
    content = action.content
    actor = action.sender
    label = f"{content.kind if content else 'action'} {action.client_id} from {actor}"
    if target.peer != action.peer:
        log.warning("dropped %s: its target is in another conversation", label)
        return []
    if target.deleted is not None:
        return []  # nothing acts on a deleted message any more
    ts = _order_ts(store, action, target)
    if isinstance(content, Reaction):
        if not store.messages.react(target.id, actor, content.emoji, ts):
            return []
        updated = store.messages.by_id(target.id)
        assert updated is not None
        return [ReactionChanged(updated, actor, content.emoji)]
    if isinstance(content, Edit):
        refused = edit_refused(target, actor, action.ts)
        if refused:
            log.warning("dropped %s: %s", label, refused)
            return []
        ctx = getattr(target.content, "ctx", None)
        new = with_context(Text(content.text), ctx)
        if not store.messages.edit(target.id, content.text, new, ts):
            return []
        updated = store.messages.by_id(target.id)
        assert updated is not None
        return [MessageEdited(updated)]
    if isinstance(content, Delete):
        by = delete_refused_or_by(target, actor, action.ts, admins)
        if by not in ("author", "admin"):
            log.warning("dropped %s: %s", label, by)
            return []
        path = store.messages.delete_for_everyone(
            target.id, by, DELETED if by == "author" else ADMIN_DELETED
        )
        remove_file(path)
        updated = store.messages.by_id(target.id)
        assert updated is not None
        return [MessageDeleted(updated, by, actor)]
    return []


def _order_ts(store: Store, action: Message, target: Message) -> int:
    """The time that orders `action` against earlier ones of its kind: the service's
    (per sender, it follows the order sent), or, for what this device has just done
    (not sent yet), its clock, kept after whatever this person did before."""
    if action.direction is not Direction.OUT or action.state is not MessageState.PENDING:
        return action.ts
    before = store.messages.latest_action_ts(target.id, action.sender)
    return max(action.ts, before + 1)


def edit_refused(target: Message, actor: str, ts: int) -> str | None:
    """Why `actor` may not edit `target` at server time `ts` (ms), or None."""
    if actor != target.sender:
        return "only its author edits a message"
    if target.deleted is not None:
        return "the message was deleted"
    if not isinstance(target.content, Text):
        return "only a text message can be edited"
    if ts - target.ts > RULES.edit_window_s * 1000:
        return f"a message can be edited for {RULES.edit_window_s // 60} minutes after it was sent"
    return None


def delete_refused_or_by(target: Message, actor: str, ts: int, admins: AdminCheck = nobody) -> str:
    """ "author" or "admin" when `actor` may delete `target` for everyone at server
    time `ts` (ms); otherwise why not."""
    if actor == target.sender:
        if ts - target.ts > RULES.delete_window_s * 1000:
            hours = RULES.delete_window_s // 3600
            return f"a message can be deleted for everyone for {hours} hours after it was sent"
        return "author"
    group_id = group_id_of(target.peer)
    if group_id is not None and admins(group_id, actor):
        return "admin"
    return "only its author or a group admin deletes a message for everyone"


def _timer(store: Store, message: Message, change: TimerChange, admins: AdminCheck) -> list[Event]:
    group_id = group_id_of(message.peer)
    if group_id is not None and not admins(group_id, message.sender):
        log.warning("dropped a timer change from %s: not an admin", message.sender)
        store.messages.hide(message.id)
        return []
    if not store.messages.set_timer(message.peer, change.seconds, message.sender, message.ts):
        return []  # a newer change is already in force
    return [TimerChanged(message.peer, change.seconds, message.sender)]


def start_read(store: Store, messages: list[Message], *, now: float) -> None:
    """Incoming messages just read: their timers start now."""
    for message in messages:
        if message.timer:
            store.messages.start_timer(message.id, int(now * 1000) + message.timer * 1000)


def sweep(store: Store, *, now: float) -> list[Event]:
    """Erase what disappeared (and its files); drop actions held too long."""
    events: list[Event] = []
    for message in store.messages.expired(int(now * 1000)):
        if message.direction is Direction.OUT:
            store.outbox.remove(message.client_id)  # not sent yet: it never goes now
        path = store.messages.erase(message.id)
        remove_file(path)
        events.append(MessageDisappeared(message))
    dropped = store.messages.drop_held(now - RULES.hold_s)
    if dropped:
        log.info("dropped %d actions whose message never arrived", dropped)
    return events


def remove_file(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
