"""Attachment files: streaming encryption (`crypto`), local file facts
(`files`) and upload and download through presigned URLs (`transfer`).

What a message carries about a file is parley.content.Attachment; this
package makes one from a local file and turns one back into a file.
"""

from __future__ import annotations

from parley.attachments.crypto import (
    EncryptedFile,
    IntegrityError,
    decrypt_file,
    encrypt_file,
    sha256_file,
)
from parley.attachments.files import guess_mime, make_thumbnail, safe_file_name
from parley.attachments.transfer import (
    MediaApi,
    ProgressCallback,
    TransferError,
    download_attachment,
    download_file,
    post_file,
    upload_attachment,
)

__all__ = [
    "EncryptedFile",
    "IntegrityError",
    "MediaApi",
    "ProgressCallback",
    "TransferError",
    "decrypt_file",
    "download_attachment",
    "download_file",
    "encrypt_file",
    "guess_mime",
    "make_thumbnail",
    "post_file",
    "safe_file_name",
    "sha256_file",
    "upload_attachment",
]
