"""The platform-neutral media pipeline: photos, voice, video and documents.

- `process_image(data)`: verify, auto-rotate, strip metadata, thumbnail, refuse bombs.
- `check_media(data, kind=..., max_bytes=...)`: size limit and type by magic bytes.
- `MediaStore(root)`: content-addressed files, `put` / `open` / `path`.

Every refusal is a `core.errors.MediaRejected` (an `InvalidInput`): `str()` is a Chinese
sentence for the resident, `.reason` an English one for the logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.media.images import ProcessedImage, allowed_formats, process_image
from core.media.sniff import KINDS, MediaInfo, check_media
from core.media.store import MediaStore

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = [
    "KINDS",
    "MediaInfo",
    "MediaStore",
    "ProcessedImage",
    "allowed_formats",
    "check_media",
    "max_bytes_for",
    "process_image",
]


def max_bytes_for(settings: Settings, kind: str) -> int:
    """The configured size limit of `kind`: photo, voice, video or document."""
    limits = {
        "photo": settings.max_photo_bytes,
        "voice": settings.max_voice_bytes,
        "video": settings.max_video_bytes,
        "document": settings.max_document_bytes,
    }
    if kind not in limits:
        raise ValueError(f"unknown media kind {kind!r} (one of {', '.join(limits)})")
    return limits[kind]
