"""A MEDIA_DIR that refuses every write, root's included, and takes them again on demand."""

from __future__ import annotations

from pathlib import Path


def block(blocker: Path) -> None:
    """Make a MEDIA_DIR under `blocker` unwritable. The tests run as root, whom chmod 0555 does
    not stop, and mounting a read-only or full filesystem needs privileges a test lacks; but
    nobody, root included, can create anything under a regular file (ENOTDIR): so a regular
    file at `blocker` blocks every write into `blocker/...`, and a directory lets them in."""
    if blocker.is_dir():
        blocker.rmdir()
    blocker.write_bytes(b"not a directory")


def unblock(blocker: Path) -> None:
    blocker.unlink()
    blocker.mkdir()
