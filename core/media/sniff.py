"""Voice, video and documents: a size limit and a type read from the first bytes.

No python-magic: a small signature table covers what the platforms send (Telegram voice is
OGG/Opus, WeChat voice AMR or Speex, browsers record WebM/Opus or MP4/AAC, phones film MP4/MOV/
3GP). The suffix returned is always one of ours, never the sender's, so it is safe in a path.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from core.errors import MediaRejected
from core.media.images import too_large

KINDS = ("voice", "video", "document")

MSG_EMPTY = "media_empty"
MSG_BAD_VOICE = "voice_unreadable"
MSG_BAD_VIDEO = "video_unreadable"
MSG_EXECUTABLE = "media_executable"
MSG_MARKUP = "media_markup"
_TOO_LARGE = {"voice": "voice", "video": "video", "document": "file"}


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What a voice note, video or document turned out to be."""

    kind: str  # voice, video or document
    mime: str
    size: int
    sha256: str  # hex digest of the bytes
    suffix: str  # ours, lowercase, [a-z0-9]{1,10}, without the dot


@dataclass(frozen=True, slots=True)
class _Type:
    mime: str
    suffix: str
    family: str  # audio, video, image, document, executable, markup, unknown


def _ftyp(data: bytes) -> _Type | None:
    """ISO base media (MP4, M4A, MOV, 3GP, HEIC) by its `ftyp` box's major brand."""
    if data[4:8] != b"ftyp":
        return None
    brand = data[8:12]
    if brand in (b"M4A ", b"M4B ", b"M4P ", b"F4A "):
        return _Type("audio/mp4", "m4a", "audio")
    if brand == b"qt  ":
        return _Type("video/quicktime", "mov", "video")
    if brand.startswith(b"3g2"):
        return _Type("video/3gpp2", "3g2", "video")
    if brand.startswith(b"3gp") or brand.startswith(b"3ge") or brand.startswith(b"3gs"):
        return _Type("video/3gpp", "3gp", "video")
    if brand in (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"hevc", b"hevx"):
        return _Type("image/heic", "heic", "image")
    if brand in (b"avif", b"avis"):
        return _Type("image/avif", "avif", "image")
    return _Type("video/mp4", "mp4", "video")  # isom, mp41, mp42, avc1, dash, M4V, ...


def _sniff(data: bytes) -> _Type:
    head = data[:64]
    if head.startswith(b"#!AMR-WB\n"):
        return _Type("audio/amr-wb", "awb", "audio")
    if head.startswith(b"#!AMR\n"):
        return _Type("audio/amr", "amr", "audio")
    if head.startswith(b"OggS"):
        return _Type("audio/ogg", "ogg", "audio")  # Opus (Telegram), Vorbis, Speex
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return _Type("audio/wav", "wav", "audio")
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return _Type("video/x-msvideo", "avi", "video")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _Type("image/webp", "webp", "image")
    if head.startswith(b"fLaC"):
        return _Type("audio/flac", "flac", "audio")
    if head.startswith(b"ID3"):
        return _Type("audio/mpeg", "mp3", "audio")
    if head.startswith(b"#!SILK_V3") or head.startswith(b"\x02#!SILK_V3"):
        return _Type("audio/silk", "silk", "audio")  # what WeChat keeps voice notes in
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM or Matroska
        if b"webm" in data[:4096]:
            return _Type("video/webm", "webm", "video")
        return _Type("video/x-matroska", "mkv", "video")
    if (ftyp := _ftyp(head)) is not None:
        return ftyp
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return _Type("video/quicktime", "mov", "video")  # old QuickTime without ftyp
    if head.startswith(b"\xff\xd8\xff"):
        return _Type("image/jpeg", "jpg", "image")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return _Type("audio/aac", "aac", "audio")  # ADTS (layer bits 00)
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return _Type("audio/mpeg", "mp3", "audio")  # MPEG audio frame sync, no ID3 tag
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _Type("image/png", "png", "image")
    if head.startswith((b"GIF87a", b"GIF89a")):
        return _Type("image/gif", "gif", "image")
    if head.startswith(b"BM") and len(data) >= 26:
        return _Type("image/bmp", "bmp", "image")
    if head.startswith(b"%PDF-"):
        return _Type("application/pdf", "pdf", "document")
    if head.startswith(b"PK\x03\x04"):
        return _zip(data)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):  # OLE2: old .doc/.xls/.ppt
        return _Type("application/x-ole-storage", "doc", "document")
    if head.startswith(b"Rar!\x1a\x07"):
        return _Type("application/vnd.rar", "rar", "document")
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return _Type("application/x-7z-compressed", "7z", "document")
    if head.startswith(b"\x1f\x8b"):
        return _Type("application/gzip", "gz", "document")
    if head.startswith(b"{\\rtf"):
        return _Type("application/rtf", "rtf", "document")
    if (head.startswith((b"MZ", b"\x7fELF", b"#!/", b"#! /"))
            or head[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                            b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"dex\n")):
        return _Type("application/octet-stream", "bin", "executable")
    return _text(data)


def _zip(data: bytes) -> _Type:
    """Office Open XML and OpenDocument are zips; peek at the first entries' names."""
    head = data[:8192]
    if head[30:38] == b"mimetype":
        for kind, suffix in ((b"opendocument.text", "odt"), (b"opendocument.spreadsheet", "ods"),
                             (b"opendocument.presentation", "odp")):
            if kind in head[38:120]:
                return _Type(f"application/vnd.oasis.{kind.decode()}", suffix, "document")
    if b"[Content_Types].xml" in head or b"_rels/" in head:
        office = "application/vnd.openxmlformats-officedocument."
        if b"word/" in head:
            return _Type(office + "wordprocessingml.document", "docx", "document")
        if b"xl/" in head:
            return _Type(office + "spreadsheetml.sheet", "xlsx", "document")
        if b"ppt/" in head:
            return _Type(office + "presentationml.presentation", "pptx", "document")
    if b"AndroidManifest.xml" in head or b"classes.dex" in head:
        return _Type("application/vnd.android.package-archive", "apk", "executable")
    return _Type("application/zip", "zip", "document")


_MARKUP = re.compile(rb"^\s*<(\?xml|!doctype|html|svg|script|head|body|iframe)\b", re.IGNORECASE)


def _text(data: bytes) -> _Type:
    sample = data[:4096]
    body = sample.removeprefix(b"\xef\xbb\xbf")
    if _MARKUP.match(body) or re.search(rb"<(script|svg|html)\b", body, re.IGNORECASE):
        return _Type("text/html", "html", "markup")
    if b"\x00" not in sample:
        for encoding in ("utf-8", "gb18030"):
            try:
                # The sample may end inside a multi-byte character: drop up to 3 bytes.
                body[: len(body) - 3 if len(data) > len(sample) else None].decode(encoding)
            except UnicodeDecodeError:
                continue
            return _Type("text/plain", "txt", "document")
    return _Type("application/octet-stream", "bin", "unknown")


# What each kind takes. Voice: audio, plus WebM/MP4 containers that browsers record audio in.
_ACCEPTS = {
    "voice": {"audio"},
    "video": {"video"},
    "document": {"audio", "video", "image", "document", "unknown"},
}
_AUDIO_IN_VIDEO_BOX = {
    "video/webm": ("audio/webm", "webm"),
    "video/x-matroska": ("audio/x-matroska", "mka"),
    "video/mp4": ("audio/mp4", "m4a"),
    "video/3gpp": ("audio/3gpp", "3gp"),
}
# Formats a platform names but that carry no magic bytes (WeChat's "speex" voice).
_DECLARED_ONLY = {"voice": {"speex": ("audio/speex", "spx"), "spx": ("audio/speex", "spx")}}
# A sender's file name may pick a more precise suffix, but only one of these, per sniffed type.
_NAME_SUFFIXES = {
    "txt": {"txt", "csv", "tsv", "md", "json", "log"},
    "doc": {"doc", "xls", "ppt", "msg", "wps", "et", "dps"},
    "zip": {"zip", "docx", "xlsx", "pptx", "odt", "ods", "odp", "ofd"},
    "jpg": {"jpg", "jpeg"},
    "mp4": {"mp4", "m4v"},
    "ogg": {"ogg", "oga", "opus"},
}


def check_media(
    data: bytes,
    *,
    kind: str,
    max_bytes: int,
    declared_format: str | None = None,
    filename: str | None = None,
) -> MediaInfo:
    """Check a voice note, video or document; raise MediaRejected when it is refused.

    `declared_format` is what the platform says (WeChat's `Format`, e.g. "speex"): it is only
    believed for formats without magic bytes. `filename` may refine the suffix among the ones
    the sniffed type allows (a zip sent as report.xlsx stays .xlsx); it never decides the type.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown media kind {kind!r} (one of {', '.join(KINDS)})")
    if not data:
        raise MediaRejected(MSG_EMPTY, reason=f"empty {kind}")
    if len(data) > max_bytes:
        raise too_large(_TOO_LARGE[kind], max_bytes,
                        reason=f"too_large: {kind} {len(data)} > {max_bytes} bytes")
    found = _sniff(data)
    mime, suffix = found.mime, found.suffix
    if found.family == "executable":
        raise MediaRejected(MSG_EXECUTABLE, reason=f"executable {kind}: {found.mime}")
    if found.family == "markup":
        raise MediaRejected(MSG_MARKUP, reason=f"markup {kind}")
    if kind == "voice" and found.mime in _AUDIO_IN_VIDEO_BOX:
        mime, suffix = _AUDIO_IN_VIDEO_BOX[found.mime]
    elif found.family not in _ACCEPTS[kind]:
        declared = (declared_format or "").strip().lower()
        fallback = _DECLARED_ONLY.get(kind, {}).get(declared)
        if fallback is None or found.family != "unknown":
            raise MediaRejected(MSG_BAD_VOICE if kind == "voice" else MSG_BAD_VIDEO,
                                reason=f"not_{kind}: sniffed {found.mime}"
                                f" (declared {declared_format!r})")
        mime, suffix = fallback
    if filename:
        wanted = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if wanted in _NAME_SUFFIXES.get(suffix, ()):
            suffix = wanted
    return MediaInfo(kind=kind, mime=mime, size=len(data),
                     sha256=hashlib.sha256(data).hexdigest(), suffix=suffix)
