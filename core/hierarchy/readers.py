"""Read the hierarchy files of FORMATS.md: CSV or XLSX, English or Chinese headers."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from core.errors import ImportRejected, RowError


class Kind(StrEnum):
    nodes = "nodes"
    members = "members"
    categories = "categories"


# Canonical column → accepted spellings (compared case-insensitively, spaces ignored).
COLUMNS: dict[Kind, dict[str, tuple[str, ...]]] = {
    Kind.nodes: {
        "code": ("code", "编码", "网格编码", "统一网格编码"),
        "parent_code": ("parent_code", "上级编码"),
        "level": ("level", "层级"),
        "name": ("name", "名称"),
        "latitude": ("latitude", "lat", "纬度"),
        "longitude": ("longitude", "lon", "lng", "经度"),
    },
    Kind.members: {
        "name": ("name", "姓名"),
        "phone": ("phone", "手机号", "手机", "电话"),
        "role": ("role", "角色"),
        "node_code": ("node_code", "所属编码"),
        "address": ("address", "住址"),
        "telegram_user_id": ("telegram_user_id", "telegramid", "telegram"),
        "wechat_openid": ("wechat_openid", "微信openid", "openid"),
        "wecom_userid": ("wecom_userid", "企业微信userid", "政务微信userid"),
    },
    Kind.categories: {
        "category": ("category", "类别"),
        "department_suffix": ("department_suffix", "责任部门"),
    },
}
REQUIRED: dict[Kind, tuple[str, ...]] = {
    Kind.nodes: ("code", "parent_code", "level", "name"),
    Kind.members: ("name", "phone", "role", "node_code"),
    Kind.categories: ("category",),
}
# Canonical English headers in file order, for export.
HEADERS: dict[Kind, tuple[str, ...]] = {
    Kind.nodes: ("code", "parent_code", "level", "name"),
    Kind.members: ("name", "phone", "role", "node_code", "address", "telegram_user_id",
                   "wechat_openid", "wecom_userid"),
    Kind.categories: ("category", "department_suffix"),
}

MAX_CELL = 1000  # longer cells are refused by the importer with the row number


def _bad(file: str, row: int, reason: str) -> ImportRejected:
    """A file that cannot be read as a table: one `file:row: reason` (row 0: the whole file)."""
    return ImportRejected([RowError(file, row, reason)])


def _norm(header: str) -> str:
    return "".join(str(header).split()).lower().lstrip("\ufeff")


_LOOKUP: dict[Kind, dict[str, str]] = {
    kind: {_norm(a): canon for canon, aliases in cols.items() for a in aliases}
    for kind, cols in COLUMNS.items()
}


@dataclass
class Table:
    """One sheet or CSV file: which kind it is, where each column sits, and its rows."""

    label: str
    kind: Kind
    columns: dict[str, int]
    source: Path
    sheet: str | None = None
    encoding: str = "utf-8-sig"

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(row number as the user sees it, cells as text); the header is row 1."""
        if self.sheet is None:
            yield from _csv_rows(self.source, self.encoding)
        else:
            yield from _xlsx_rows(self.source, self.sheet)


def classify(
    headers: list[Any], label: str, hint: str | None = None
) -> tuple[Kind, dict[str, int]]:
    """Which kind of table the header row describes, and the index of each known column."""
    normed = [_norm(h) if h is not None else "" for h in headers]
    kinds = [Kind(hint)] if hint is not None and hint in Kind.__members__ else list(Kind)
    best: tuple[int, Kind, dict[str, int]] | None = None
    for kind in kinds:
        found: dict[str, int] = {}
        for i, h in enumerate(normed):
            canon = _LOOKUP[kind].get(h)
            if canon is not None and canon not in found:
                found[canon] = i
        if all(r in found for r in REQUIRED[kind]):
            score = len(found)
            if best is None or score > best[0]:
                best = (score, kind, found)
    if best is None:
        shown = ", ".join(str(h) for h in headers if h) or "(empty)"
        raise _bad(label, 1, f"cannot tell what this table is from its headers ({shown}); "
                   "expected the columns of nodes, members or categories (FORMATS.md)")
    return best[1], best[2]


def _detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) as FORMATS.md asks; GB18030 as saved by a Chinese Excel."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8-sig"
        except UnicodeDecodeError:
            pass
    try:
        with path.open(encoding="gb18030") as f:
            while f.read(1 << 20):
                pass
    except UnicodeDecodeError as exc:
        raise _bad(path.name, 0, f"not a UTF-8 or GB18030 text file ({exc.reason})") from None
    return "gb18030"


def _csv_rows(path: Path, enc: str) -> Iterator[tuple[int, list[str]]]:
    with path.open(newline="", encoding=enc) as f:
        reader = csv.reader(f)
        next(reader, None)
        for n, row in enumerate(reader, start=2):
            if row and any(c.strip() for c in row):
                yield n, row


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # Excel stores phone numbers and IDs as numbers
    return str(v)


def _xlsx_rows(path: Path, sheet: str) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        ws = wb[sheet]
        it = ws.iter_rows(values_only=True)
        next(it, None)
        for n, row in enumerate(it, start=2):
            cells = [_cell(v) for v in row]
            if any(c.strip() for c in cells):
                yield n, cells
    finally:
        wb.close()


def open_tables(path: Path) -> list[Table]:
    """Every table in one file: a CSV is one table, an XLSX one per non-empty sheet."""
    if not path.is_file():
        raise _bad(path.name, 0, "no such file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_tables(path)
    if suffix in (".csv", ".txt", ""):
        enc = _detect_encoding(path)
        with path.open(newline="", encoding=enc) as f:
            header = next(csv.reader(f), None)
        if not header:
            raise _bad(path.name, 1, "the file is empty")
        kind, cols = classify(header, path.name, hint=path.stem.lower())
        return [Table(path.name, kind, cols, path, encoding=enc)]
    raise _bad(path.name, 0, f"unsupported file type {suffix!r} (use .csv or .xlsx)")


def _xlsx_tables(path: Path) -> list[Table]:
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, SyntaxError, TypeError,
            AttributeError, IndexError) as exc:
        # SyntaxError: xml.etree's ParseError, for a zip whose parts are not XML
        raise _bad(path.name, 0, f"not a readable XLSX workbook ({exc})") from None
    tables: list[Table] = []
    try:
        for ws in wb.worksheets:
            try:
                header = next(ws.iter_rows(max_row=1, values_only=True), None)
            except (KeyError, ValueError, SyntaxError, TypeError, AttributeError) as exc:
                raise _bad(path.name, 0, f"not a readable XLSX workbook ({exc})") from None
            if not header or not any(h for h in header):
                continue
            label = f"{path.name}[{ws.title}]" if len(wb.worksheets) > 1 else path.name
            hint = ws.title.lower() if len(wb.worksheets) > 1 else path.stem.lower()
            kind, cols = classify(list(header), label, hint=hint)
            tables.append(Table(label, kind, cols, path, sheet=ws.title))
    finally:
        wb.close()
    if not tables:
        raise _bad(path.name, 0, "the workbook has no table with a header row")
    return tables
