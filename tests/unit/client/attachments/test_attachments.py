"""Attachment encryption, thumbnails and message content kinds (no network)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from parley.attachments.crypto import IntegrityError, decrypt_file, encrypt_file
from parley.attachments.files import guess_mime, make_thumbnail, safe_file_name
from parley.content import (
    CHUNK_BYTES,
    Attachment,
    ContactCard,
    ContentError,
    Location,
    Text,
    encode_content,
    encrypted_size,
    kind_for_mime,
    parse_content,
)

SEALED = CHUNK_BYTES + 17  # one chunk of ciphertext


def _write_random(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


# -- streaming encryption ----------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES]
)
def test_encrypted_file_round_trips_for_sizes_around_chunk_boundaries(
    tmp_path: Path, size: int
) -> None:
    data = _write_random(tmp_path / "plain", size)

    sealed = encrypt_file(tmp_path / "plain", tmp_path / "sealed")
    written = decrypt_file(
        tmp_path / "sealed",
        tmp_path / "opened",
        key=sealed.key,
        header=sealed.header,
        sha256=sealed.sha256,
        size=size,
    )

    assert written == size
    assert (tmp_path / "opened").read_bytes() == data
    assert sealed.size == size
    assert sealed.encrypted_size == encrypted_size(size) == (tmp_path / "sealed").stat().st_size
    assert sealed.sha256 == hashlib.sha256((tmp_path / "sealed").read_bytes()).hexdigest()


def test_each_file_gets_a_fresh_key_and_header(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"same bytes")
    one = encrypt_file(tmp_path / "plain", tmp_path / "a")
    two = encrypt_file(tmp_path / "plain", tmp_path / "b")
    assert one.key != two.key
    assert one.header != two.header
    assert (tmp_path / "a").read_bytes() != (tmp_path / "b").read_bytes()


def test_multi_megabyte_round_trip_keeps_memory_flat(tmp_path: Path) -> None:
    size = 24 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    with open(tmp_path / "plain", "wb") as out:
        for _ in range(size // len(block)):
            out.write(block)

    tracemalloc.start()
    try:
        sealed = encrypt_file(tmp_path / "plain", tmp_path / "sealed")
        _, encrypt_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        decrypt_file(
            tmp_path / "sealed",
            tmp_path / "opened",
            key=sealed.key,
            header=sealed.header,
            sha256=sealed.sha256,
            size=size,
        )
        _, decrypt_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    print(
        f"\n24 MiB file: peak traced memory encrypt {encrypt_peak / 1024:.0f} KiB, "
        f"decrypt {decrypt_peak / 1024:.0f} KiB"
    )
    # a handful of 64 KiB chunks, never the file (24 MiB)
    assert encrypt_peak < 1024 * 1024
    assert decrypt_peak < 2 * 1024 * 1024
    assert (
        hashlib.sha256((tmp_path / "opened").read_bytes()).digest()
        == hashlib.sha256((tmp_path / "plain").read_bytes()).digest()
    )


def test_ciphertext_does_not_contain_the_plaintext(tmp_path: Path) -> None:
    text = b"the quick brown fox jumps over the lazy dog " * 5000
    (tmp_path / "plain").write_bytes(text)
    encrypt_file(tmp_path / "plain", tmp_path / "sealed")
    stored = (tmp_path / "sealed").read_bytes()
    assert b"quick brown fox" not in stored


@pytest.fixture
def sealed_file(tmp_path: Path) -> tuple[Path, Any]:
    _write_random(tmp_path / "plain", 3 * CHUNK_BYTES + 100)
    sealed = encrypt_file(tmp_path / "plain", tmp_path / "sealed")
    return tmp_path / "sealed", sealed


def _open(src: Path, sealed: Any, *, check_hash: bool) -> None:
    decrypt_file(
        src,
        src.parent / "opened",
        key=sealed.key,
        header=sealed.header,
        sha256=sealed.sha256 if check_hash else None,
        size=sealed.size,
    )


@pytest.mark.parametrize("check_hash", [True, False])
def test_a_flipped_bit_is_refused_and_leaves_no_output(
    sealed_file: tuple[Path, Any], check_hash: bool
) -> None:
    path, sealed = sealed_file
    data = bytearray(path.read_bytes())
    data[SEALED + 5] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(IntegrityError):
        _open(path, sealed, check_hash=check_hash)

    assert not (path.parent / "opened").exists()
    assert _leftovers(path.parent) == []


def test_truncation_at_a_chunk_boundary_is_refused(sealed_file: tuple[Path, Any]) -> None:
    path, sealed = sealed_file
    path.write_bytes(path.read_bytes()[: 3 * SEALED])  # drop the final chunk exactly

    with pytest.raises(IntegrityError, match="truncated"):
        _open(path, sealed, check_hash=False)
    assert not (path.parent / "opened").exists()
    assert _leftovers(path.parent) == []


def test_truncation_inside_a_chunk_is_refused(sealed_file: tuple[Path, Any]) -> None:
    path, sealed = sealed_file
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IntegrityError):
        _open(path, sealed, check_hash=False)
    assert not (path.parent / "opened").exists()


def test_reordered_chunks_are_refused(sealed_file: tuple[Path, Any]) -> None:
    path, sealed = sealed_file
    data = path.read_bytes()
    chunks = [data[i : i + SEALED] for i in range(0, len(data), SEALED)]
    chunks[0], chunks[1] = chunks[1], chunks[0]
    path.write_bytes(b"".join(chunks))
    with pytest.raises(IntegrityError):
        _open(path, sealed, check_hash=False)
    assert not (path.parent / "opened").exists()


def test_data_after_the_final_chunk_is_refused(tmp_path: Path) -> None:
    _write_random(tmp_path / "plain", 100)
    sealed = encrypt_file(tmp_path / "plain", tmp_path / "sealed")
    with open(tmp_path / "sealed", "ab") as out:
        out.write(b"x" * 40)
    with pytest.raises(IntegrityError):
        _open(tmp_path / "sealed", sealed, check_hash=False)
    assert not (tmp_path / "opened").exists()


def test_the_wrong_key_is_refused(sealed_file: tuple[Path, Any]) -> None:
    path, sealed = sealed_file
    with pytest.raises(IntegrityError):
        decrypt_file(
            path,
            path.parent / "opened",
            key=bytes(32),
            header=sealed.header,
            sha256=sealed.sha256,
        )
    assert not (path.parent / "opened").exists()


def test_a_plaintext_size_other_than_promised_is_refused(sealed_file: tuple[Path, Any]) -> None:
    path, sealed = sealed_file
    with pytest.raises(IntegrityError):
        decrypt_file(
            path,
            path.parent / "opened",
            key=sealed.key,
            header=sealed.header,
            sha256=sealed.sha256,
            size=sealed.size + 1,
        )
    assert not (path.parent / "opened").exists()


def test_a_failed_decryption_keeps_an_existing_file_intact(sealed_file: tuple[Path, Any]) -> None:
    path, sealed = sealed_file
    (path.parent / "opened").write_bytes(b"earlier download")
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(IntegrityError):
        _open(path, sealed, check_hash=True)
    assert (path.parent / "opened").read_bytes() == b"earlier download"


# -- thumbnails ----------------------------------------------------------------


def _photo(path: Path, size: tuple[int, int], mode: str = "RGB", fmt: str = "JPEG") -> None:
    image = Image.effect_noise(size, 64).convert(mode)
    image.save(path, fmt, quality=95)


def test_thumbnail_of_a_large_photo_is_a_small_jpeg(tmp_path: Path) -> None:
    _photo(tmp_path / "photo.jpg", (3000, 2000))

    made = make_thumbnail(tmp_path / "photo.jpg")

    assert made is not None
    thumb, width, height = made
    print(f"\nthumbnail of a 3000x2000 noisy photo: {len(thumb)} bytes")
    assert (width, height) == (3000, 2000)
    assert len(thumb) <= 8 * 1024
    with Image.open(io.BytesIO(thumb)) as preview:
        assert preview.format == "JPEG"
        assert max(preview.size) == 96
        assert preview.size[0] > preview.size[1]  # aspect kept


def test_thumbnail_follows_the_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated a quarter turn
    Image.new("RGB", (300, 200), (0, 128, 0)).save(tmp_path / "r.jpg", exif=exif.tobytes())

    made = make_thumbnail(tmp_path / "r.jpg")

    assert made is not None
    assert made[1:] == (200, 300)
    with Image.open(io.BytesIO(made[0])) as preview:
        assert preview.size[1] > preview.size[0]


def test_thumbnail_of_a_transparent_png_is_flattened(tmp_path: Path) -> None:
    Image.new("RGBA", (400, 400), (255, 0, 0, 0)).save(tmp_path / "t.png")
    made = make_thumbnail(tmp_path / "t.png")
    assert made is not None
    with Image.open(io.BytesIO(made[0])) as preview:
        r, g, b = preview.convert("RGB").getpixel((10, 10))  # type: ignore[misc]
        assert min(r, g, b) > 240  # white background, not black


def test_a_file_that_is_not_an_image_has_no_thumbnail(tmp_path: Path) -> None:
    (tmp_path / "fake.jpg").write_bytes(b"not really a jpeg")
    assert make_thumbnail(tmp_path / "fake.jpg") is None


# -- content kinds -----------------------------------------------------------


def _attachment(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "v": 1,
        "kind": "image",
        "media_id": "ab" * 16,
        "key": base64.b64encode(bytes(range(32))).decode(),
        "header": base64.b64encode(bytes(24)).decode(),
        "sha256": "0f" * 32,
        "size": 1234,
        "mime": "image/jpeg",
        "name": "holiday.jpg",
        "thumbnail": base64.b64encode(b"\xff\xd8\xff" + b"\x00" * 100).decode(),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_each_content_kind_round_trips_through_json() -> None:
    contents = [
        Text("hello 👋\nsecond line"),
        Location(52.3676, 4.9041, "Dam Square"),
        Location(-33.9, 151.2),
        ContactCard("Ada Lovelace", ("+44 20 7946 0000", "+15550100")),
        parse_content(_attachment()),
        parse_content(_attachment(kind="document", mime="application/pdf", thumbnail=None)),
    ]
    for content in contents:
        assert parse_content(encode_content(content)) == content


def test_attachment_descriptor_has_the_agreed_fields() -> None:
    attachment = parse_content(_attachment(caption="look!", width=4000, height=3000))
    assert isinstance(attachment, Attachment)
    assert attachment.key == bytes(range(32))
    assert attachment.encrypted_size == 1234 + 17
    shape = json.loads(encode_content(attachment))
    assert set(shape) == {
        "v",
        "kind",
        "media_id",
        "key",
        "header",
        "sha256",
        "size",
        "mime",
        "name",
        "thumbnail",
        "caption",
        "width",
        "height",
    }


def test_location_gives_an_openstreetmap_link() -> None:
    assert Location(52.3676, 4.9041).map_url() == (
        "https://www.openstreetmap.org/?mlat=52.3676&mlon=4.9041#map=16/52.3676/4.9041"
    )
    assert "mlat=-33.9&mlon=151" in Location(-33.9, 151.0).map_url()


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[1, 2]",
        {"kind": "text", "text": "no version"},
        {"v": 2, "kind": "text", "text": "future"},
        {"v": True, "kind": "text", "text": "bool version"},
        {"v": 1, "kind": "sticker"},
        {"v": 1, "kind": "text"},
        {"v": 1, "kind": "text", "text": "   "},
        {"v": 1, "kind": "text", "text": 5},
        {"v": 1, "kind": "location", "lat": 91, "lon": 0},
        {"v": 1, "kind": "location", "lat": "52", "lon": 4},
        {"v": 1, "kind": "location", "lat": True, "lon": 4},
        {"v": 1, "kind": "location", "lat": 1, "lon": float("nan")},
        {"v": 1, "kind": "contact", "name": "Ada", "phones": []},
        {"v": 1, "kind": "contact", "name": "Ada", "phones": "+15550100"},
        {"v": 1, "kind": "contact", "name": "Ada", "phones": ["call me"]},
        {"v": 1, "kind": "contact", "name": "", "phones": ["+15550100"]},
        _attachment(media_id="short"),
        _attachment(key="not base64!"),
        _attachment(key=base64.b64encode(bytes(31)).decode()),
        _attachment(header=base64.b64encode(bytes(23)).decode()),
        _attachment(sha256="XYZ"),
        _attachment(size=-1),
        _attachment(size="12"),
        _attachment(mime="jpeg"),
        _attachment(mime="video/mp4"),  # an image must be image/*
        _attachment(name="../../etc/passwd"),
        _attachment(name="a\x00b"),
        _attachment(name=".."),
        _attachment(thumbnail=base64.b64encode(b"GIF89a").decode()),
        _attachment(thumbnail=base64.b64encode(b"\xff\xd8\xff" + bytes(9000)).decode()),
        _attachment(width=0),
    ],
)
def test_malformed_content_is_a_clear_content_error(bad: Any) -> None:
    if isinstance(bad, dict):
        bad = json.dumps(bad)
    with pytest.raises(ContentError):
        parse_content(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


_FIELDS = [
    "text",
    "lat",
    "lon",
    "name",
    "phones",
    "media_id",
    "key",
    "header",
    "sha256",
    "size",
    "mime",
    "thumbnail",
    "caption",
    "width",
    "height",
]


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["text", "location", "contact", "image", "document", "x"]),
    fields=st.dictionaries(st.sampled_from(_FIELDS), json_values),
)
def test_arbitrary_json_parses_or_raises_content_error_only(
    kind: str, fields: dict[str, Any]
) -> None:
    with contextlib.suppress(ContentError):
        parse_content({"v": 1, "kind": kind, **fields})


def test_mime_decides_the_kind() -> None:
    assert kind_for_mime("image/png") == "image"
    assert kind_for_mime("video/mp4") == "video"
    assert kind_for_mime("audio/ogg") == "audio"
    assert kind_for_mime("application/pdf") == "document"
    with pytest.raises(ContentError):
        kind_for_mime("nonsense")
    assert guess_mime("a.JPG") == "image/jpeg"
    assert guess_mime("archive.unknownext") == "application/octet-stream"


def test_file_names_are_made_safe_to_send_and_save() -> None:
    assert safe_file_name("/home/me/photo.jpg") == "photo.jpg"
    assert safe_file_name("..") == "file"
    assert safe_file_name("a\nb\x00c.txt") == "a_b_c.txt"
    long = safe_file_name("x" * 400 + ".pdf")
    assert len(long) == 255
    assert long.endswith(".pdf")
