"""How big a spreadsheet may be, checked before and while openpyxl reads it.

An XLSX is a zip archive: 800 KiB of upload can inflate to gigabytes (a zip bomb), and a sheet
can declare a million rows of sixteen thousand columns in a few bytes. Before openpyxl sees the
file, its central directory is checked (declared sizes, compression ratio, entry count, an
OOXML package at all); while it reads, every entry goes through a counting reader that stops
past the limit whatever the directory claimed; and the sheets' row and column counts are bounded.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from core.errors import ImportRejected, RowError

if TYPE_CHECKING:
    from core.settings import Settings

MiB = 2**20
# Entries below this size are never refused for their ratio: tiny XML compresses oddly well.
RATIO_FLOOR = MiB


@dataclass(frozen=True)
class SheetLimits:
    """Upload limits for spreadsheets; the defaults are those of core/settings.py."""

    max_unpacked_bytes: int = 256 * MiB  # all entries of one XLSX together
    max_entry_bytes: int = 128 * MiB  # one entry (one sheet's XML, the shared strings)
    max_ratio: int = 200  # uncompressed / compressed, per entry over RATIO_FLOOR
    max_entries: int = 1000
    max_rows: int = 1_048_576  # per sheet: Excel's own limit
    max_columns: int = 100
    max_cell_chars: int = 131_072  # per cell, CSV and XLSX alike (the csv module's limit)

    @classmethod
    def from_settings(cls, settings: Settings) -> SheetLimits:
        return cls(max_unpacked_bytes=settings.xlsx_max_unpacked_bytes,
                   max_entry_bytes=settings.xlsx_max_entry_bytes,
                   max_ratio=settings.xlsx_max_ratio, max_entries=settings.xlsx_max_entries,
                   max_rows=settings.sheet_max_rows, max_columns=settings.sheet_max_columns)


class TooLarge(ImportRejected):
    """A spreadsheet over one of the limits: one `file:0: reason`."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__([RowError(file, 0, reason)])


def _mib(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"


def check_archive(path: Path, limits: SheetLimits) -> None:
    """Refuse an XLSX whose central directory promises more than the limits allow."""
    name = path.name
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ImportRejected.one(name, 0, f"not a readable XLSX workbook ({exc})") from None
    if len(infos) > limits.max_entries:
        raise TooLarge(name, f"the workbook has {len(infos)} parts, more than the "
                       f"{limits.max_entries} a spreadsheet needs")
    names = {i.filename for i in infos}
    if "[Content_Types].xml" not in names or not any(
            n.startswith("xl/") and n.endswith(".xml") for n in names):
        raise ImportRejected.one(name, 0, "not a readable XLSX workbook (not an Office Open XML "
                           "package: save it from Excel or WPS as .xlsx)")
    total = 0
    for i in infos:
        if i.flag_bits & 0x1:
            raise ImportRejected.one(name, 0, "not a readable XLSX workbook (encrypted parts)")
        if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ImportRejected.one(name, 0, "not a readable XLSX workbook (unusual compression)")
        if i.file_size > limits.max_entry_bytes:
            raise TooLarge(name, f"part {i.filename} unpacks to {_mib(i.file_size)}, more "
                           f"than the {_mib(limits.max_entry_bytes)} allowed "
                           "(XLSX_MAX_ENTRY_BYTES)")
        if i.file_size > RATIO_FLOOR and i.file_size > limits.max_ratio * max(i.compress_size, 1):
            raise TooLarge(name, f"part {i.filename} is compressed "
                           f"{i.file_size // max(i.compress_size, 1)}:1, more than the "
                           f"{limits.max_ratio}:1 of a real spreadsheet (XLSX_MAX_RATIO)")
        total += i.file_size
    if total > limits.max_unpacked_bytes:
        raise TooLarge(name, f"the workbook unpacks to {_mib(total)}, more than the "
                       f"{_mib(limits.max_unpacked_bytes)} allowed (XLSX_MAX_UNPACKED_BYTES); "
                       "split it or send CSV")


class _Budget:
    """Bytes inflated so far from one archive, over all the times openpyxl opens its parts."""

    def __init__(self, name: str, limits: SheetLimits) -> None:
        self.name, self.limits = name, limits
        # openpyxl reads a sheet's start once for its size and then the whole sheet: room for
        # reading everything twice.
        self.left = 2 * limits.max_unpacked_bytes

    def spend(self, n: int, entry: str, entry_total: int) -> None:
        self.left -= n
        if entry_total > self.limits.max_entry_bytes or self.left < 0:
            raise TooLarge(self.name, f"part {entry} unpacks to more than the directory says "
                           f"or the limits allow ({_mib(self.limits.max_entry_bytes)} a part)")


class _CountingReader(io.RawIOBase):
    """A zip entry stream that stops once more bytes came out than the limits allow."""

    def __init__(self, raw: IO[bytes], entry: str, budget: _Budget) -> None:
        self._raw, self._entry, self._budget, self._seen = raw, entry, budget, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._raw.read(len(b))
        self._seen += len(data)
        self._budget.spend(len(data), self._entry, self._seen)
        b[:len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(MiB):
                chunks.append(chunk)
            return b"".join(chunks)
        data = self._raw.read(size)
        self._seen += len(data)
        self._budget.spend(len(data), self._entry, self._seen)
        return bytes(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


class BoundedZipFile(zipfile.ZipFile):
    """A ZipFile whose entries are read through the counting reader."""

    def __init__(self, path: Path, limits: SheetLimits) -> None:
        super().__init__(path)
        self._budget = _Budget(path.name, limits)

    def open(self, name: Any, mode: Any = "r", pwd: bytes | None = None, *,
             force_zip64: bool = False) -> Any:
        raw = super().open(name, mode, pwd, force_zip64=force_zip64)
        if mode != "r":
            return raw
        entry = name.filename if isinstance(name, zipfile.ZipInfo) else str(name)
        return _CountingReader(raw, entry, self._budget)


def load_bounded(path: Path, limits: SheetLimits) -> Any:
    """openpyxl's read-only workbook over the counting reader (check_archive first)."""
    from openpyxl.reader.excel import ExcelReader

    reader = ExcelReader(path, read_only=True, data_only=True)
    reader.archive.close()
    reader.archive = BoundedZipFile(path, limits)
    reader.read()
    return reader.wb


def check_dimensions(ws: Any, label: str, limits: SheetLimits) -> None:
    """Refuse a sheet that declares more rows or columns than the limits."""
    rows, cols = ws.max_row, ws.max_column
    if rows is not None and rows > limits.max_rows:
        raise TooLarge(label, f"the sheet declares {rows} rows, more than the "
                       f"{limits.max_rows} allowed (SHEET_MAX_ROWS)")
    if cols is not None and cols > limits.max_columns:
        raise TooLarge(label, f"the sheet declares {cols} columns, more than the "
                       f"{limits.max_columns} allowed (SHEET_MAX_COLUMNS)")
