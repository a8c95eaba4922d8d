"""Photos: verify, auto-rotate, strip every bit of metadata, thumbnail, refuse bombs.

What comes out is re-encoded from pixels only: no EXIF (so no GPS, no camera serial, no
timestamp), no XMP, no comments, no text chunks. An ICC colour profile is kept when it matches
the output's colour space (an RGB profile on an RGB/RGBA image, a gray one on a gray image),
because phones shoot in Display P3 and dropping it would wash the colours out; a profile that
no longer matches (CMYK converted to RGB) is dropped. The thumbnail never carries a profile.

The GPS point of the original photo is returned (the caller keeps it privately on the case) but
never written back into the image.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import MediaRejected

# Pillow format ids accepted. MPO is what Pillow calls a JPEG that carries a second picture
# (many phones write one); only its first frame is used, as for GIF and animated WebP.
_ALWAYS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP")
# Only when a plugin (pillow-heif) has registered itself; we do not add one.
_IF_PLUGIN = ("HEIF",)

_GPS_IFD = 0x8825
_WARNINGS_LOCK = threading.Lock()
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WIDE_GRAY = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

# The exceptions Pillow raises on input it cannot read (a truncated JPEG is an OSError).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError,
                  ZeroDivisionError, MemoryError)

MSG_EMPTY = "photo_empty"
MSG_UNREADABLE = "photo_unreadable"
MSG_UNSUPPORTED = "photo_unsupported"
MSG_DAMAGED = "photo_damaged"
MSG_TOO_MANY_PIXELS = "photo_too_many_pixels"
TOO_LARGE = {"photo": "photo_too_large", "voice": "voice_too_large",
             "video": "video_too_large", "file": "file_too_large"}


def too_large(what: str, max_bytes: int, *, reason: str) -> MediaRejected:
    """The refusal of a `what` (photo, voice, video or file) over `max_bytes`: its message
    says the limit ("20MB")."""
    mb = max_bytes / 2**20
    shown = f"{round(mb, 1):g}MB" if mb >= 1 else f"{max(1, max_bytes // 1024)}KB"
    return MediaRejected(TOO_LARGE[what], reason=reason, limit=shown)


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    """A clean photo ready to store and show, and what was learnt from the original."""

    image: bytes  # JPEG, or PNG when the source had (real) transparency
    thumbnail: bytes  # JPEG, longest side <= thumb_size
    width: int  # of `image`, after auto-rotation
    height: int
    format: str  # the source's Pillow format id: JPEG, PNG, WEBP, GIF, BMP, MPO, HEIF
    mime: str  # of `image`: image/jpeg or image/png
    gps: tuple[float, float] | None  # (lat, lon) from the source's EXIF; keep it private
    sha256: str  # hex digest of `image`

    @property
    def suffix(self) -> str:
        return "png" if self.mime == "image/png" else "jpg"

    thumbnail_mime = "image/jpeg"


def allowed_formats() -> tuple[str, ...]:
    """The Pillow format ids this pipeline opens (HEIF only when a plugin registered it)."""
    Image.init()
    return _ALWAYS + tuple(f for f in _IF_PLUGIN if f in Image.OPEN)


def process_image(
    data: bytes,
    *,
    max_bytes: int = 20 * 2**20,
    max_pixels: int = 40_000_000,
    thumb_size: int = 320,
) -> ProcessedImage:
    """Verify, auto-rotate, strip metadata and thumbnail one photo; raise MediaRejected
    (an InvalidInput whose text a resident can read) for anything that is not a usable image."""
    if not data:
        raise MediaRejected(MSG_EMPTY, reason="empty")
    if len(data) > max_bytes:
        raise too_large("photo", max_bytes, reason=f"too_large: {len(data)} > {max_bytes} bytes")
    formats = allowed_formats()
    try:
        return _process(data, formats=formats, max_pixels=max_pixels, thumb_size=thumb_size)
    except MediaRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaRejected(MSG_TOO_MANY_PIXELS, reason=f"decompression_bomb: {exc}") from None
    except UnidentifiedImageError:
        raise MediaRejected(
            MSG_UNREADABLE, reason=f"unidentified: first bytes {data[:12].hex()}"
        ) from None
    except _DECODE_ERRORS as exc:
        raise MediaRejected(
            MSG_DAMAGED, reason=f"undecodable: {type(exc).__name__}: {exc}"
        ) from None


@contextlib.contextmanager
def _guarded() -> Iterator[None]:
    """Around Pillow's header and metadata parsing: its "could be a decompression bomb"
    warning (past the global MAX_IMAGE_PIXELS; past twice that it raises) becomes an error,
    and its complaints about corrupt EXIF (which we throw away anyway) are not shown.

    warnings.catch_warnings() swaps the process-wide filter list while it runs, so callers in
    worker threads take turns here (header and EXIF parsing, microseconds; no pixel work):
    two overlapping blocks would otherwise restore each other's lists out of order and leave
    these filters in place for the whole process.
    """
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
        yield


def _open(data: bytes, formats: tuple[str, ...], max_pixels: int) -> Image.Image:
    """Identify the image from its header and check its size; nothing is decoded here."""
    with _guarded():
        # Only these plugins get to look at the bytes (no EPS/Ghostscript, PSD, ICO, TIFF).
        # MPO has no opener of its own: the JPEG one returns it.
        im = Image.open(io.BytesIO(data), formats=[f for f in formats if f in Image.OPEN])
    if im.format not in formats:
        raise MediaRejected(MSG_UNSUPPORTED, reason=f"format_not_allowed: {im.format}")
    width, height = im.size
    if width < 1 or height < 1:
        raise MediaRejected(MSG_UNREADABLE, reason=f"empty_canvas: {width}x{height}")
    # Our own per-call limit, whatever the global Image.MAX_IMAGE_PIXELS says.
    if width * height > max_pixels:
        raise MediaRejected(MSG_TOO_MANY_PIXELS,
                            reason=f"too_many_pixels: {width}x{height} > {max_pixels}")
    return im


def _process(data: bytes, *, formats: tuple[str, ...], max_pixels: int,
             thumb_size: int) -> ProcessedImage:
    probe = _open(data, formats, max_pixels)
    probe.verify()  # checksums and structure where the format has them (PNG CRCs)
    im = _open(data, formats, max_pixels)  # verify() leaves the image unusable: reopen
    source_format = str(im.format)
    im.load()  # a truncated or corrupt file fails here
    with _guarded():
        gps = _gps_of(im)  # also parses and caches the EXIF block for _upright
    icc = im.info.get("icc_profile")
    _upright(im)
    clean = _normalise_mode(im)
    del im

    png = clean.mode in ("RGBA", "LA")
    kept_icc = icc if isinstance(icc, bytes) and _icc_matches(icc, clean.mode) else None
    clean.info = {}  # nothing from the source file rides along on save (comments, text, XMP)
    out = io.BytesIO()
    save_args: dict[str, Any] = {"icc_profile": kept_icc} if kept_icc else {}
    if png:
        clean.save(out, format="PNG", optimize=False, compress_level=6, **save_args)
    else:
        clean.save(out, format="JPEG", quality=88, **save_args)
    image_bytes = out.getvalue()

    return ProcessedImage(
        image=image_bytes,
        thumbnail=_thumbnail(clean, thumb_size),
        width=clean.width,
        height=clean.height,
        format=source_format,
        mime="image/png" if png else "image/jpeg",
        gps=gps,
        sha256=hashlib.sha256(image_bytes).hexdigest(),
    )


def _upright(im: Image.Image) -> None:
    """Apply the EXIF (or XMP) orientation in place; a broken EXIF block changes nothing."""
    # EXIF is untrusted input; a broken block must not lose the photo.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(im, in_place=True)


def _normalise_mode(im: Image.Image) -> Image.Image:
    """RGB or L for JPEG output, RGBA for PNG output when the picture really is transparent."""
    mode = im.mode
    if mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        low, _high = rgba.getchannel("A").getextrema()
        if isinstance(low, int | float) and low >= 255:  # alpha everywhere opaque: plain JPEG
            return rgba.convert("RGB")
        return rgba
    if mode in ("RGB", "L"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in _WIDE_GRAY:  # 16-bit gray: keep the top 8 bits
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if mode in ("I", "F"):  # arbitrary range: stretch what is there to 0..255
        f = im.convert("F")
        low, high = f.getextrema()
        lo, hi = float(low), float(high)  # type: ignore[arg-type]
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return f.point(lambda v: (v - lo) * scale).convert("L")
    return im.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, ...


def _icc_matches(icc: bytes, mode: str) -> bool:
    """The profile's colour space (bytes 16-19 of its header) fits the output mode."""
    if len(icc) < 128 or len(icc) > 1 << 20:
        return False
    space = icc[16:20]
    return (space == b"RGB " and mode in ("RGB", "RGBA")) or (space == b"GRAY" and mode == "L")


def _thumbnail(clean: Image.Image, size: int) -> bytes:
    thumb = clean.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    if thumb.mode in ("RGBA", "LA"):
        background = Image.new("RGB", thumb.size, (255, 255, 255))
        background.paste(thumb, mask=thumb.getchannel("A"))
        thumb = background
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=80)
    return out.getvalue()


def _gps_of(im: Image.Image) -> tuple[float, float] | None:
    """(lat, lon) from EXIF GPS IFD 0x8825 with the N/S/E/W refs applied, or None."""
    try:
        gps = im.getexif().get_ifd(_GPS_IFD)
        if not gps:
            return None
        lat = _degrees(gps.get(2), gps.get(1), positive="N", negative="S")
        lon = _degrees(gps.get(4), gps.get(3), positive="E", negative="W")
    except Exception:  # EXIF is untrusted input; a broken GPS block is just no GPS
        return None
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None
    if lat == 0 and lon == 0:  # what cameras write when they had no fix
        return None
    return (lat, lon)


def _degrees(value: Any, ref: Any, *, positive: str, negative: str) -> float | None:
    if value is None:
        return None
    parts = list(value) if isinstance(value, tuple | list) else [value]
    if not 1 <= len(parts) <= 3:
        return None
    total = 0.0
    for part, unit in zip(parts, (1.0, 60.0, 3600.0), strict=False):
        number = float(part)
        if not math.isfinite(number) or number < 0:
            return None
        total += number / unit
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    ref = str(ref or positive).strip("\x00 ").upper()[:1]
    if ref not in (positive, negative):
        return None
    return -total if ref == negative else total
