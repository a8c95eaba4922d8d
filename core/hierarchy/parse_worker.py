"""Read a chat upload's workbooks through once in a child process before the import touches them.

The archive checks (archive_limits.py) stop a zip bomb before anything is inflated; what is
left is a workbook that is within the limits but still costly to read (a huge shared-strings
table, one enormous cell). The child process has an address-space and CPU cap
(resource.setrlimit), so such a file costs the child its memory, not the server, and only one
upload is read at a time (per server process), so a queue of them cannot take every core from
the webhooks. The import itself then reads a file that is known to fit.

The import runs inside the update's database transaction (on SQLite, the one write lock), so a
platform adapter that downloads the file first calls `precheck` before that transaction opens;
the flow's `check_uploads` then finds the verdict for the same bytes and does not read it again.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ImportRejected, RowError
from core.hierarchy.archive_limits import SheetLimits, check_archive

if TYPE_CHECKING:
    from core.settings import Settings

XLSX_SUFFIXES = (".xlsx", ".xlsm")
_SLOT = threading.BoundedSemaphore(1)
# precheck's verdicts by (content digest, limits, memory and time caps), for the flow that
# follows it; a few suffice.
_VERDICTS: OrderedDict[tuple[str, SheetLimits, int, float], list[RowError]] = OrderedDict()
_VERDICTS_LOCK = threading.Lock()
KEEP_VERDICTS = 16
BUSY = "another import is being read; please send the file again in a minute"
TOO_COSTLY = ("the workbook needs more memory or time to read than allowed "
              "(IMPORT_WORKER_MEMORY_BYTES, IMPORT_WORKER_SECONDS); split it or send CSV")


def precheck(name: str, data: bytes, *, settings: Settings) -> None:
    """Read an uploaded workbook through now, outside any transaction, and keep the verdict for
    check_uploads; anything but a workbook is left alone."""
    if Path(name).suffix.lower() not in XLSX_SUFFIXES:
        return
    limits = SheetLimits.from_settings(settings)
    key = _key(data, limits, settings)
    with _VERDICTS_LOCK:
        if key in _VERDICTS:  # the platform's retry of an update still being handled
            return
    try:
        with tempfile.TemporaryDirectory(prefix="linzhang-precheck-") as tmp:
            book = Path(tmp) / Path(name).name
            book.write_bytes(data)
            errors = _verdict(book, limits, settings)
    except (OSError, ValueError):
        return  # no room for the copy, or a name no file can have: the flow reads it instead
    if any(e.reason == BUSY for e in errors):
        return  # not a verdict on the file: the flow tries again
    with _VERDICTS_LOCK:
        _VERDICTS[key] = errors
        while len(_VERDICTS) > KEEP_VERDICTS:
            _VERDICTS.popitem(last=False)


def check_uploads(paths: Iterable[Path | str], *, settings: Settings) -> None:
    """Refuse (ImportRejected, `file:row: reason`) an uploaded workbook that is over the limits
    or cannot be read within the worker's memory and time; CSV files pass untouched."""
    limits = SheetLimits.from_settings(settings)
    errors: list[RowError] = []
    for book in (Path(p) for p in paths):
        if book.suffix.lower() not in XLSX_SUFFIXES:
            continue
        with _VERDICTS_LOCK:
            known = _VERDICTS.get(_key(book.read_bytes(), limits, settings))
        errors.extend(_verdict(book, limits, settings) if known is None else
                      [_relabel(e, book.name) for e in known])
    if errors:
        raise ImportRejected(errors)


def _key(data: bytes, limits: SheetLimits,
         settings: Settings) -> tuple[str, SheetLimits, int, float]:
    return (hashlib.sha256(data).hexdigest(), limits, settings.import_worker_memory_bytes,
            settings.import_worker_seconds)


def _relabel(e: RowError, name: str) -> RowError:
    """The precheck ran under the sender's file name; the error lines carry this file's."""
    sheet = e.file[e.file.rindex("["):] if e.file.endswith("]") and "[" in e.file else ""
    return RowError(name + sheet, e.row, e.reason)


def _verdict(book: Path, limits: SheetLimits, settings: Settings) -> list[RowError]:
    try:
        check_archive(book, limits)
    except ImportRejected as exc:
        return list(exc.errors)
    if not _SLOT.acquire(timeout=settings.import_queue_seconds):
        return [RowError(book.name, 0, BUSY)]
    try:
        return _read_in_child(book, limits, settings.import_worker_memory_bytes,
                              settings.import_worker_seconds)
    finally:
        _SLOT.release()


def _read_in_child(book: Path, limits: SheetLimits, memory: int,
                   seconds: float) -> list[RowError]:
    # spawn, not fork: the server has threads (the scheduler, the sender, the thread pool).
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(str(book), limits, memory, seconds, send),
                        name="linzhang-import-reader", daemon=True)
    child.start()
    send.close()
    found: Any = None
    try:
        if receive.poll(seconds):
            try:
                found = receive.recv()
            except (EOFError, OSError):
                found = None  # the child died: over its memory or CPU limit
    finally:
        if child.is_alive():
            child.kill()
        child.join(10)
        receive.close()
    if not isinstance(found, list):
        return [RowError(book.name, 0, TOO_COSTLY)]
    return [RowError(str(f), int(r), str(m)) for f, r, m in found]


def _child(path: str, limits: SheetLimits, memory: int, seconds: float, conn: Any) -> None:
    import resource

    from core.hierarchy.readers import open_tables

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    name = Path(path).name
    found: list[tuple[str, int, str]] = []
    try:
        for table in open_tables(Path(path), limits=limits,
                                 on_error=lambda f, r, m: found.append((f, r, str(m)))):
            for _ in table.rows():
                pass
    except ImportRejected as exc:
        found.extend((e.file, e.row, str(e.reason)) for e in exc.errors)
    except MemoryError:
        found = [(name, 0, TOO_COSTLY)]
    conn.send(found)
    conn.close()
