"""Content-addressed media files on disk: `ab/cd/<sha256>.<suffix>` under one root.

A ref is the relative path; the same bytes always get the same ref, so putting them twice
writes once. Refs from outside (a dashboard URL, a database row) are checked against the exact
shape before they touch the file system, and nothing is followed through a symlink.
Directories are created on the first put (or `probe`), never on import or construction.

When the disk refuses a file (read-only, full, not a directory) `put` raises
`MediaStoreUnavailable`: the message around the file is still handled, and the attachment is
recorded with an `unsaved_ref` (its row is marked "failed"). `probe` tells health checks
whether the store can take a file right now.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InvalidInput, MediaStoreUnavailable, NotFound
from core.media.images import too_large

if TYPE_CHECKING:
    from core.settings import Settings

_REF = re.compile(r"([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})\.([a-z0-9]{1,10})")
_SUFFIX = re.compile(r"[a-z0-9]{1,10}")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
# The file_ref of an attachment whose bytes the store could not keep; never a valid ref.
UNSAVED_PREFIX = "unsaved:"
UNAVAILABLE = "store_unavailable"


def unsaved_ref(name: str) -> str:
    """The attachment file_ref for a file that could not be stored (marked failed)."""
    return f"{UNSAVED_PREFIX}{name}"[:200]


def is_unsaved(file_ref: str | None) -> bool:
    return bool(file_ref) and str(file_ref).startswith(UNSAVED_PREFIX)


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "full"
    return f"not_writable: {exc.strerror or type(exc).__name__}"


class MediaStore:
    """Files by content hash under `root`; see the module docstring."""

    def __init__(self, root: Path | str, *, size_limit: int | None = None) -> None:
        """`size_limit`: the largest file `put` takes, or None for no limit (our own exports
        of a whole city can be large; uploads are limited per kind before they get here)."""
        self.root = Path(root)
        self.size_limit = size_limit

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaStore:
        limit = max(settings.max_photo_bytes, settings.max_voice_bytes,
                    settings.max_video_bytes, settings.max_document_bytes)
        return cls(Path(settings.media_dir), size_limit=limit)

    @staticmethod
    def ref_for(data: bytes, suffix: str) -> str:
        """The ref `data` gets (or has) in any store, without touching the disk."""
        clean = suffix.lstrip(".").lower()
        if not _SUFFIX.fullmatch(clean):
            raise InvalidInput("media_suffix_bad", suffix=suffix)
        digest = hashlib.sha256(data).hexdigest()
        return f"{digest[:2]}/{digest[2:4]}/{digest}.{clean}"

    def put(self, data: bytes, suffix: str) -> str:
        """Store `data` and return its ref; the same bytes and suffix give the same ref."""
        if self.size_limit is not None and len(data) > self.size_limit:
            raise too_large("file", self.size_limit,
                            reason=f"too_large: store {len(data)} > {self.size_limit} bytes")
        ref = self.ref_for(data, suffix)
        target = self.path(ref)
        if target.is_file() and target.stat().st_size == len(data):
            return ref
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target = self.path(ref)  # again: the directories exist now and must not be links
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-", suffix=".tmp")
        except OSError as exc:
            raise MediaStoreUnavailable(UNAVAILABLE, reason=_why(exc)) from exc
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise MediaStoreUnavailable(UNAVAILABLE, reason=_why(exc)) from exc
            raise
        return ref

    def probe(self) -> str | None:
        """Why the store cannot take a file right now ("full", "not_writable: …"), or None.

        A real write, not a permission check: root passes every permission check, and only
        a write finds a read-only or full disk."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".probe-", suffix=".tmp")
            try:
                os.write(fd, b"ok")
            finally:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            free = shutil.disk_usage(self.root).free
        except OSError as exc:
            return _why(exc)
        # Too little room for the largest file we accept is full, before a resident finds out.
        return "full" if self.size_limit is not None and free < self.size_limit else None

    def path(self, ref: str) -> Path:
        """The file of `ref`; refuses anything not shaped like a ref, or reached by a link."""
        m = _REF.fullmatch(ref) if isinstance(ref, str) else None
        if m is None or m.group(3)[:2] != m.group(1) or m.group(3)[2:4] != m.group(2):
            raise InvalidInput("media_ref_bad", ref=ref)
        root = self.root.resolve()
        candidate = root / m.group(1) / m.group(2) / f"{m.group(3)}.{m.group(4)}"
        for part in (candidate.parent.parent, candidate.parent, candidate):
            if part.is_symlink():
                raise InvalidInput("media_ref_bad", ref=ref, why="symlink")
        if not candidate.resolve().is_relative_to(root):
            raise InvalidInput("media_ref_bad", ref=ref, why="escapes")
        return candidate

    def exists(self, ref: str) -> bool:
        return self.path(ref).is_file()

    def open(self, ref: str) -> bytes:
        """The bytes of `ref`; NotFound when the store does not have them."""
        target = self.path(ref)
        try:
            fd = os.open(target, os.O_RDONLY | _O_NOFOLLOW | _O_BINARY)
        except FileNotFoundError:
            raise NotFound("media_not_found", ref=ref) from None
        except OSError as exc:  # ELOOP: the file became a symlink after the check
            raise InvalidInput("media_ref_bad", ref=ref, why=exc.strerror) from None
        with os.fdopen(fd, "rb") as fh:
            return fh.read()
