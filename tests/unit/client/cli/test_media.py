"""The CLI's media lines (a file with how to download it, a map link, a card) and its
progress bar for uploads and downloads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from parley.cli.render import ProgressBar, human_size, render_content, render_message
from parley.content import Attachment, ContactCard, Location, Text
from parley.models import Contact as Person
from parley.models import Direction, Message, MessageState

ALICE = "a" * 32


def message(
    content: Any, *, direction: Direction = Direction.IN, file: Path | None = None
) -> Message:
    return Message(
        id=7,
        peer=ALICE,
        direction=direction,
        client_id="c",
        sender=ALICE,
        text="(description)",
        ts=1_700_000_000_000,
        state=MessageState.RECEIVED,
        content=content,
        file=file,
    )


def document(**changes: Any) -> Attachment:
    fields: dict[str, Any] = {
        "kind": "image",
        "media_id": "0" * 32,
        "key": bytes(32),
        "header": bytes(24),
        "sha256": "0" * 64,
        "size": 2_100_000,
        "mime": "image/jpeg",
        "name": "photo.jpg",
    }
    return Attachment(**{**fields, **changes})


def test_a_received_file_shows_its_name_size_and_how_to_download_it() -> None:
    assert render_content(message(document())) == "📎 photo.jpg (2.1 MB) — parley download 7"
    assert (
        render_content(message(document(caption="at noon")))
        == "📎 photo.jpg (2.1 MB) “at noon” — parley download 7"
    )
    saved = Path("/home/bob/.parley/profiles/bob/media/photo.jpg")
    assert (
        render_content(message(document(), file=saved))
        == f"📎 photo.jpg (2.1 MB) — saved as {saved}"
    )
    assert render_content(message(document(), direction=Direction.OUT)) == "📎 photo.jpg (2.1 MB)"


def test_a_location_shows_as_an_openstreetmap_link_and_a_card_with_its_numbers() -> None:
    line = render_content(message(Location(48.8584, 2.2945, "Eiffel Tower")))
    assert line == (
        "📍 Eiffel Tower https://www.openstreetmap.org/?mlat=48.8584&mlon=2.2945"
        "#map=16/48.8584/2.2945"
    )
    assert render_content(message(Location(0.0, 0.0))).startswith("📍 Location https://")
    card = render_content(message(ContactCard("Carol", ("+15550000003", "+15550000004"))))
    assert card == "👤 Carol +15550000003, +15550000004"
    assert render_content(message(Text("hi"))) == "(description)"  # a text is its text


def test_a_media_line_in_history_names_the_sender() -> None:
    alice = Person(ALICE, "Alice", "+15550000001")
    line = render_message(message(document()), alice, color=False)
    assert line.endswith("  Alice: 📎 photo.jpg (2.1 MB) — parley download 7")


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (14_200, "14.2 KB"),
        (2_100_000, "2.1 MB"),
        (150_000_000, "150 MB"),
        (999_960, "1.0 MB"),
        (1_300_000_000, "1.3 GB"),
    ],
)
def test_sizes_are_shown_as_people_read_them(size: int, shown: str) -> None:
    assert human_size(size) == shown


class Capture(io.StringIO):
    def __init__(self, *, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_the_progress_bar_writes_a_line_per_quarter_into_a_log() -> None:
    out = Capture(tty=False)
    bar = ProgressBar("upload big.bin", out)
    for done in range(0, 4_000_001, 100_000):
        bar(done, 4_000_000)
    bar.close()
    lines = out.getvalue().splitlines()
    assert [line.split("]")[1].split("%")[0].strip() for line in lines] == [
        "0",
        "25",
        "50",
        "75",
        "100",
    ]
    assert lines[-1] == f"upload big.bin [{'#' * 24}] 100%  4.0 MB / 4.0 MB"


def test_the_progress_bar_redraws_in_place_on_a_terminal_and_ends_its_line() -> None:
    out = Capture(tty=True)
    bar = ProgressBar("download x", out)
    bar(0, 200)
    bar(1, 200)  # still 0%: not redrawn
    bar(100, 200)
    bar.close()  # interrupted half way: the line is ended
    text = out.getvalue()
    assert text.count("\r") == 2
    assert "  50%" in text
    assert text.endswith("\n")
    assert text.count("\n") == 1
