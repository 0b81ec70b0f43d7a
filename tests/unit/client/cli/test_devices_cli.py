"""The CLI for linked devices and the registration lock: the QR code of a link code,
`parley link`, `parley devices [link|unlink]`, `parley pin`, `parley signup --pin`,
and the notice lines in `inbox` and `chat`. The SDK is a stand-in here: what is
checked is what the commands ask of it and what they print."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import segno

from parley.cli import main
from parley.cli.chat import Chat
from parley.cli.commands import account as account_command
from parley.cli.commands import link as link_command
from parley.cli.context import Context
from parley.cli.parser import build_parser
from parley.cli.qr import QUIET_ZONE, qr_lines
from parley.cli.render import device_row, notice_line
from parley.cli.terminal import Terminal
from parley.devices.history import HistorySent
from parley.errors import RegistrationLocked
from parley.models import (
    Account,
    AccountMoved,
    Connected,
    Contact,
    DeviceLinked,
    DevicesChanged,
    DeviceUnlinked,
    Event,
    HistoryImported,
    LinkedDevice,
    Synced,
)

ALICE = "a" * 32
PHONE, LAPTOP = "a1" * 8, "a2" * 8
CODE = (
    "parley-link:1:" + "0123456789abcdef" * 2 + ":" + LAPTOP + ":" + "A" * 42 + "E" + ":" + "B" * 22
)


# --- the QR code ------------------------------------------------------------------------

_DARK_TOP = {"█": (False, False), "▀": (False, True), "▄": (True, False), " ": (True, True)}


def test_the_qr_code_holds_the_link_code_module_for_module() -> None:
    lines = qr_lines(CODE)
    expected = [
        [bool(m) for m in row]
        for row in segno.make_qr(CODE, error="m").matrix_iter(border=QUIET_ZONE)
    ]
    # read the half blocks back into rows of dark modules
    rows: list[list[bool]] = []
    for line in lines:
        assert len(line) == len(expected[0])
        rows.append([_DARK_TOP[ch][0] for ch in line])
        rows.append([_DARK_TOP[ch][1] for ch in line])
    assert rows[: len(expected)] == expected
    assert all(not dark for row in rows[len(expected) :] for dark in row)  # light padding
    # the quiet zone is light all round, and the code fits a terminal
    assert set(lines[0]) == {"█"}
    assert set(lines[-1]) <= {"█", "▀"}
    assert len(lines[0]) <= 80


def test_another_code_draws_another_qr_code() -> None:
    assert qr_lines(CODE) != qr_lines(CODE.replace("B" * 22, "C" * 22))


# --- rows and notices ------------------------------------------------------------------------


def device(did: str, **changes: Any) -> LinkedDevice:
    fields: dict[str, Any] = {
        "device_id": did,
        "created_at": 1_700_000_000,
        "current": False,
        "ready": True,
        "push": None,
        "role": "companion",
        "key_index": 1,
        "listed": True,
    }
    return LinkedDevice(**{**fields, **changes})


def test_a_device_row_shows_role_and_key_index() -> None:
    primary = device_row(device(PHONE, role="primary", key_index=0, current=True))
    companion = device_row(device(LAPTOP))
    assert primary.startswith(f"{PHONE}  primary #0")
    assert primary.endswith("this device")
    assert companion.startswith(f"{LAPTOP}  companion #1")
    assert "NOT on the signed device list" in device_row(device(LAPTOP, listed=False))
    assert "NOT on the signed device list" not in companion


def test_each_notice_has_its_line() -> None:
    alice = Contact("b" * 32, "Alice", None)
    you = Contact(ALICE, "you", "+15550000001")
    assert notice_line(DevicesChanged(alice, (LAPTOP,), ()), color=False) == (
        "Alice's devices changed"
    )
    assert notice_line(DevicesChanged(you, (LAPTOP,), ()), color=False) == "your devices changed"
    assert notice_line(DeviceLinked(LAPTOP), color=False) == (
        f"a new device was linked to your account: {LAPTOP}"
    )
    assert notice_line(DeviceUnlinked(LAPTOP), color=False) == (
        f"a device was unlinked from your account: {LAPTOP}"
    )
    assert notice_line(AccountMoved(), color=False) == (
        "⚠ this device was signed out: your number was registered on another phone"
    )
    assert notice_line(HistoryImported(1, 1), color=False) == (
        "imported 1 message in 1 conversation from your primary device"
    )
    assert notice_line(HistoryImported(12, 3), color=False) == (
        "imported 12 messages in 3 conversations from your primary device"
    )
    assert notice_line(Synced(), color=False) is None


# --- the commands, over a stand-in client ------------------------------------------------------


@dataclass
class FakeClient:
    """What the commands call on `parley.Client`, recorded."""

    account: Account = field(
        default_factory=lambda: Account(ALICE, PHONE, "+15550000001", "primary", 0)
    )
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    queued: list[Event] = field(default_factory=list)
    sent: HistorySent | None = None
    opened: list[dict[str, bool]] = field(default_factory=list)  # how the command opened it

    async def devices(self) -> list[LinkedDevice]:
        return [
            device(PHONE, role="primary", key_index=0, current=True),
            device(LAPTOP),
        ]

    async def link_device(self, code: str) -> str:
        self.calls.append(("link_device", code))
        return LAPTOP

    async def history_sent(self, device_id: str) -> HistorySent | None:
        self.calls.append(("history_sent", device_id))
        return self.sent

    async def wait_outbox_empty(self) -> None:
        self.calls.append(("wait_outbox_empty",))

    async def unlink_device(self, device_id: str) -> None:
        self.calls.append(("unlink_device", device_id))

    async def set_registration_lock(self, pin: str) -> None:
        self.calls.append(("set_registration_lock", pin))

    async def remove_registration_lock(self) -> None:
        self.calls.append(("remove_registration_lock",))

    def events(self) -> FakeStream:
        return FakeStream(list(self.queued))


@dataclass
class FakeStream:
    events: list[Event]

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> Event:
        if not self.events:
            await asyncio.Event().wait()  # nothing more: as a quiet connection
        return self.events.pop(0)

    def close(self) -> None:
        pass


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    fake = FakeClient()

    @contextlib.asynccontextmanager
    async def opened_client(
        self: Context, *, connect: bool, online: bool = False
    ) -> AsyncIterator[FakeClient]:
        fake.opened.append({"connect": connect, "online": online})
        yield fake

    monkeypatch.setattr(Context, "opened", opened_client)
    monkeypatch.delenv("PARLEY_PIN", raising=False)
    return fake


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_devices_lists_role_and_key_index(client: FakeClient) -> None:
    code, out = run("devices")
    assert code == 0
    assert out.splitlines() == [device_row(d) for d in asyncio.run(client.devices())]
    assert "primary #0" in out
    assert "companion #1" in out


def test_devices_link_approves_then_waits_for_the_history_to_go(client: FakeClient) -> None:
    client.sent = HistorySent(LAPTOP, 42, 3, "c" * 32)
    code, out = run("devices", "link", f"  {CODE} ")
    assert code == 0
    assert ("link_device", CODE) in client.calls
    assert client.calls[-2:] == [("history_sent", LAPTOP), ("wait_outbox_empty",)]
    assert client.opened == [{"connect": True, "online": False}]  # live: the history goes
    assert out.splitlines() == [
        f"Approved device {LAPTOP}; waiting for it to finish linking…",
        f"Linked {LAPTOP} and sent it 42 messages of history (3 conversations).",
    ]


def test_devices_link_says_so_when_no_history_could_go(client: FakeClient) -> None:
    code, out = run("devices", "link", CODE)
    assert code == 0
    assert out.splitlines()[-1] == f"Linked {LAPTOP}. Its history could not be sent (see the log)."
    assert ("wait_outbox_empty",) not in client.calls


def test_devices_unlink_unlinks_another_device(client: FakeClient) -> None:
    code, out = run("devices", "unlink", LAPTOP)
    assert code == 0
    assert ("unlink_device", LAPTOP) in client.calls
    assert out.startswith(f"Unlinked {LAPTOP}: it is off your device list and signed out,")


def test_pin_set_reads_the_pin_without_echo_and_remove_removes_it(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = iter(["12345678", "12345678"])
    prompts: list[str] = []

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return next(typed)

    monkeypatch.setattr("parley.cli.context.getpass.getpass", getpass)
    monkeypatch.setattr("sys.stdin", _Tty())
    code, out = run("pin", "set")
    assert code == 0
    assert ("set_registration_lock", "12345678") in client.calls
    assert prompts == ["New PIN (6-64 digits): ", "Repeat it: "]
    assert "12345678" not in out
    assert out.startswith("Registration lock set")

    code, out = run("pin", "remove")
    assert code == 0
    assert client.calls[-1] == ("remove_registration_lock",)
    assert out.startswith("The registration lock is removed")


def test_pin_set_refuses_two_different_pins_and_changes_nothing(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = iter(["12345678", "87654321"])
    monkeypatch.setattr("parley.cli.context.getpass.getpass", lambda prompt: next(typed))
    monkeypatch.setattr("sys.stdin", _Tty())
    code, _ = run("pin", "set")
    assert code == 1
    assert "the PINs differ" in capsys.readouterr().err
    assert not [c for c in client.calls if c[0] == "set_registration_lock"]


def test_pin_set_without_a_terminal_needs_parley_pin(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert run("pin", "set")[0] == 1
    assert "PARLEY_PIN" in capsys.readouterr().err
    monkeypatch.setenv("PARLEY_PIN", "246810")
    assert run("pin", "set")[0] == 0
    assert client.calls[-1] == ("set_registration_lock", "246810")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- parley link ------------------------------------------------------------------------------


def test_link_shows_the_qr_and_the_code_then_who_it_joined_and_the_history(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: dict[str, Any] = {}

    async def link(profile: str, **kwargs: Any) -> Account:
        asked.update(kwargs, profile=profile)
        kwargs["on_code"](CODE)
        return Account(ALICE, LAPTOP, "+15550000001", "companion", 1)

    monkeypatch.setattr(link_command, "link", link)
    monkeypatch.setenv("PARLEY_LOCAL_FILE", "/nonexistent/local.json")
    monkeypatch.setattr(Context, "endpoints", lambda self: "the endpoints")
    client.queued = [Connected(), Synced(), HistoryImported(6, 2)]

    code, out = run("--profile", "laptop", "link", "--timeout", "60")

    assert code == 0
    assert (asked["profile"], asked["endpoints"], asked["timeout"]) == (
        "laptop",
        "the endpoints",
        60.0,
    )
    lines = out.splitlines()
    qr = qr_lines(CODE)
    start = lines.index(qr[0])
    assert lines[start : start + len(qr)] == qr
    assert f"  parley devices link {CODE}" in lines
    assert "Joined the account of +15550000001 (user " + ALICE + ") as" in lines
    assert f"device {LAPTOP}, key index 1." in lines
    assert lines[-1] == "imported 6 messages in 2 conversations from your primary device"


def test_link_says_when_no_history_came_in_time(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def link(profile: str, **kwargs: Any) -> Account:
        return Account(ALICE, LAPTOP, "+15550000001", "companion", 1)

    monkeypatch.setattr(link_command, "link", link)
    monkeypatch.setattr(Context, "endpoints", lambda self: None)
    code, out = run("link", "--history-wait", "0.05")
    assert code == 0
    assert out.splitlines()[-1].startswith("No history arrived yet")


# --- parley signup --pin ----------------------------------------------------------------------


def _signup_stubs(monkeypatch: pytest.MonkeyPatch, answers: list[Any]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    async def request_code(phone: str, **kwargs: Any) -> dict[str, Any]:
        return {"expires_in": 300}

    async def sign_up(profile: str, phone: str, code: str, **kwargs: Any) -> Account:
        calls.append({"code": code, **kwargs})
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    monkeypatch.setattr(account_command, "request_code", request_code)
    monkeypatch.setattr(account_command, "sign_up", sign_up)
    monkeypatch.setattr(Context, "endpoints", lambda self: None)
    return calls


def _locked(attempts_left: int | None = 4) -> RegistrationLocked:
    return RegistrationLocked(
        423, "registration_locked", "locked", attempts_left=attempts_left, retry_after=None
    )


def test_signup_with_pin_sends_the_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_PIN", "13579246")
    calls = _signup_stubs(monkeypatch, [Account(ALICE, PHONE, "+15550000001", "primary", 0)])
    code, out = run("signup", "+15550000001", "--code", "123456", "--pin")
    assert code == 0
    assert calls[0]["pin"] == "13579246"
    assert calls[0]["code"] == "123456"
    assert "primary device" in out


def test_signup_on_a_locked_number_without_a_terminal_says_to_use_pin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PARLEY_PIN", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    calls = _signup_stubs(monkeypatch, [_locked()])
    code, out = run("signup", "+15550000001", "--code", "123456")
    assert code == 1
    assert calls[0]["pin"] is None
    assert "registration lock" in out
    assert "4 tries left" in out
    assert "run again with --pin" in capsys.readouterr().err


def test_signup_on_a_locked_number_asks_for_the_pin_and_tries_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PARLEY_PIN", raising=False)
    monkeypatch.setattr("sys.stdin", _Tty())
    monkeypatch.setattr("parley.cli.context.getpass.getpass", lambda prompt: "11223344")
    calls = _signup_stubs(
        monkeypatch, [_locked(), Account(ALICE, PHONE, "+15550000001", "primary", 0)]
    )
    code, _ = run("signup", "+15550000001", "--code", "123456")
    assert code == 0
    assert [c["pin"] for c in calls] == [None, "11223344"]
    assert [c["code"] for c in calls] == ["123456", "123456"]  # the same code again


def test_a_wrong_pin_is_reported_with_what_is_left(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PARLEY_PIN", "00000000")
    calls = _signup_stubs(monkeypatch, [_locked(attempts_left=2)])
    code, out = run("signup", "+15550000001", "--code", "123456", "--pin")
    assert code == 1
    assert len(calls) == 1  # a given PIN is not asked again
    assert "Wrong PIN. 2 tries left" in out


# --- notices in chat and the parser -----------------------------------------------------------


async def test_chat_shows_notices_and_keeps_a_signed_out_status() -> None:
    out = io.StringIO()
    term = Terminal(out, "> ", tty=False)
    ctx = Context(build_parser().parse_args(["chat", "Bob"]), out)
    bob = Contact("b" * 32, "Bob", None)
    chat = Chat(ctx, FakeClient(), FakeStream([]), term, bob)  # type: ignore[arg-type]
    await chat._show(DevicesChanged(bob, ("b2" * 8,), ()))
    await chat._show(DeviceLinked(LAPTOP))
    await chat._show(AccountMoved())
    await chat._show(Connected())
    assert out.getvalue().splitlines() == [
        "Bob's devices changed",
        f"a new device was linked to your account: {LAPTOP}",
        "⚠ this device was signed out: your number was registered on another phone",
        "signed out: your number was registered on another phone",
    ]
    assert term.status == "signed out: your number was registered on another phone"


def test_the_new_commands_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["devices", "link", CODE])
    assert (args.command, args.devices_command, args.code) == ("devices", "link", CODE)
    args = parser.parse_args(["devices", "unlink", LAPTOP])
    assert (args.devices_command, args.device_id) == ("unlink", LAPTOP)
    assert parser.parse_args(["pin", "set"]).pin_command == "set"
    assert parser.parse_args(["pin", "remove"]).pin_command == "remove"
    assert parser.parse_args(["signup", "+15550000001", "--pin"]).pin is True
    assert parser.parse_args(["signup", "+15550000001"]).pin is False
    args = parser.parse_args(["link", "--profile", "laptop"])
    assert (args.command, args.profile, args.timeout, args.history_wait) == (
        "link",
        "laptop",
        300.0,
        120.0,
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["pin"])
