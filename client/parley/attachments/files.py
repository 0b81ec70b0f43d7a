"""Facts of local files about to be sent or just received: MIME type, a name
safe to send and to save, and an image's preview."""

from __future__ import annotations

import io
import mimetypes
import os
from typing import Final

from parley.content import MAX_NAME_CHARS
from parley.content.attachment import THUMBNAIL_MAX_BYTES, UNSAFE_NAME

__all__ = ["THUMBNAIL_SIDE", "guess_mime", "make_thumbnail", "safe_file_name"]

THUMBNAIL_SIDE: Final = 96
_EXIF_ORIENTATION = 0x0112


def guess_mime(path: str | os.PathLike[str]) -> str:
    """The MIME type a file's name suggests; application/octet-stream when unknown."""
    guessed, _ = mimetypes.guess_type(os.fspath(path), strict=False)
    return (guessed or "application/octet-stream").lower()


def safe_file_name(name: str) -> str:
    """A name safe to send and to save: no directories, no control characters."""
    cleaned = UNSAFE_NAME.sub("_", os.path.basename(name)).strip()
    if cleaned in {"", ".", ".."}:
        cleaned = "file"
    if len(cleaned) > MAX_NAME_CHARS:
        stem, dot, ext = cleaned.rpartition(".")
        keep = MAX_NAME_CHARS - len(ext) - 1 if dot and len(ext) <= 16 else MAX_NAME_CHARS
        cleaned = f"{stem[:keep]}.{ext}" if dot and len(ext) <= 16 else cleaned[:keep]
    return cleaned


def make_thumbnail(
    path: str | os.PathLike[str],
    *,
    side: int = THUMBNAIL_SIDE,
    max_bytes: int = THUMBNAIL_MAX_BYTES,
) -> tuple[bytes, int, int] | None:
    """A small JPEG preview of an image and the image's (width, height).

    None when the file is not an image Pillow can read (the attachment is then
    sent without a preview, as WhatsApp does for formats it cannot render).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            width, height = opened.size
            # EXIF orientations 5-8 turn the picture a quarter: as shown, it is height x width
            if opened.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                width, height = height, width
            # JPEG decodes at a fraction of its size when asked: far less memory
            opened.draft("RGB", (side * 4, side * 4))
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "P"):
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                image = flat
            else:
                image = image.convert("RGB")
            image.thumbnail((side, side))
            for quality in (70, 55, 40, 25):
                out = io.BytesIO()
                image.save(out, "JPEG", quality=quality, optimize=True)
                if out.tell() <= max_bytes:
                    return out.getvalue(), width, height
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        return None
    return None
