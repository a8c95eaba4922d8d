"""Read the hierarchy files of FORMATS.md: CSV or XLSX, English or Chinese headers."""

from __future__ import annotations

import codecs
import csv
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from core.errors import ImportRejected
from core.hierarchy.archive_limits import (
    SheetLimits,
    TooLarge,
    check_archive,
    check_dimensions,
    load_bounded,
)
from core.hierarchy.cells import csv_unescape


class Kind(StrEnum):
    nodes = "nodes"
    members = "members"
    categories = "categories"
    routing = "routing"


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
        "parent_category": ("parent_category", "上级类别"),
        "answer_limit": ("answer_limit", "答复时限"),
        "handle_limit": ("handle_limit", "办结时限"),
        "verify": ("verify", "需核查"),
        "route_to": ("route_to", "直派"),
        "canned": ("canned", "常用答复"),
    },
    Kind.routing: {
        "rule": ("rule", "规则编号", "规则"),
        "category": ("category", "类别"),
        "route_to": ("route_to", "直派"),
        "within": ("within", "范围", "适用范围"),
        "hours": ("hours", "时段"),
        "inform": ("inform", "知会", "抄送"),
    },
}
REQUIRED: dict[Kind, tuple[str, ...]] = {
    Kind.nodes: ("code", "parent_code", "level", "name"),
    Kind.members: ("name", "phone", "role", "node_code"),
    Kind.categories: ("category",),
    Kind.routing: ("rule", "category", "route_to"),
}
# Canonical English headers in file order, for export.
HEADERS: dict[Kind, tuple[str, ...]] = {
    Kind.nodes: ("code", "parent_code", "level", "name"),
    Kind.members: ("name", "phone", "role", "node_code", "address", "telegram_user_id",
                   "wechat_openid", "wecom_userid"),
    Kind.categories: ("category", "department_suffix", "parent_category", "answer_limit",
                      "handle_limit", "verify", "route_to", "canned"),
    Kind.routing: ("rule", "category", "route_to", "within", "hours", "inform"),
}

# A callback for one bad row: (label, row, reason). Without one, a bad row raises
# ImportRejected.
RowSink = Callable[[str, int, str], None]
NUL_REASON = ("the row holds a NUL character (\\x00), which text cannot contain;"
              " remove it and save the file again")


def _norm(header: str) -> str:
    return "".join(str(header).split()).lower().lstrip("\ufeff")


_LOOKUP: dict[Kind, dict[str, str]] = {
    kind: {_norm(a): canon for canon, aliases in cols.items() for a in aliases}
    for kind, cols in COLUMNS.items()
}


def default_limits() -> SheetLimits:
    """The deployment's upload limits (core/settings.py)."""
    from core.settings import Settings

    return SheetLimits.from_settings(Settings())


@dataclass
class Table:
    """One sheet or CSV file: which kind it is, where each column sits, and its rows."""

    label: str
    kind: Kind
    columns: dict[str, int]
    source: Path
    sheet: str | None = None
    encoding: str = "utf-8-sig"
    limits: SheetLimits = field(default_factory=SheetLimits)
    on_error: RowSink | None = None

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(row number as the user sees it, cells as text); the header is row 1. A row that no
        text can hold (a NUL, a cell over the limit) goes to `on_error` and is left out; a file
        that turns out too big or broken halfway ends its rows there."""
        rows = (_csv_rows(self.source, self.encoding) if self.sheet is None
                else _xlsx_rows(self.source, self.sheet, self.limits))
        try:
            for n, cells in rows:
                bad = _cells_error(cells, self.limits)
                if bad:
                    self._bad(n, bad)
                else:
                    yield n, cells
        except _Stop as stop:
            self._bad(stop.row, stop.reason)

    def _bad(self, row: int, reason: str) -> None:
        if self.on_error is None:
            raise ImportRejected.one(self.label, row, reason)
        self.on_error(self.label, row, reason)


class _Stop(Exception):
    """The rest of the file cannot be read: report it on `row` and read no further."""

    def __init__(self, row: int, reason: str) -> None:
        self.row, self.reason = row, reason


def _cells_error(cells: list[str], limits: SheetLimits) -> str | None:
    # One pass in C over the whole row first: a city's import reads millions of cells.
    if "\x00" in "".join(cells):
        return NUL_REASON
    if max(map(len, cells), default=0) > limits.max_cell_chars:
        i, c = next((i, c) for i, c in enumerate(cells) if len(c) > limits.max_cell_chars)
        return (f"column {i + 1} holds {len(c)} characters, more than the "
                f"{limits.max_cell_chars} a cell may have")
    return None


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
        raise ImportRejected.one(
            label, 1, f"cannot tell what this table is from its headers ({shown}); "
            "expected the columns of nodes, members, categories or routing (FORMATS.md)"
        )
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
        raise ImportRejected.one(path.name, 0, f"not a UTF-8 or GB18030 text file ({exc.reason})"
        ) from None
    return "gb18030"


def _csv_rows(path: Path, enc: str) -> Iterator[tuple[int, list[str]]]:
    with path.open(newline="", encoding=enc) as f:
        reader = csv.reader(f)
        next(reader, None)
        n = 1
        while True:
            n += 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # A field past csv.field_size_limit(): after it the reader may have lost its
                # place in quoted text, so the rest of the file is not read.
                raise _Stop(n, f"a cell is too long to read ({exc}); at most "
                            f"{csv.field_size_limit()} characters") from None
            if row and any(c.strip() for c in row):
                yield n, [csv_unescape(c) for c in row] if "'" in "".join(row) else row


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # Excel stores phone numbers and IDs as numbers
    return str(v)


# What openpyxl and its XML parser raise on a workbook that is not what it claims to be
# (SyntaxError: xml.etree's ParseError).
_BROKEN = (zipfile.BadZipFile, KeyError, ValueError, OSError, SyntaxError, TypeError,
           AttributeError, IndexError, EOFError, zlib.error)


def _xlsx_rows(path: Path, sheet: str, limits: SheetLimits) -> Iterator[tuple[int, list[str]]]:
    n = 1
    try:
        wb = load_bounded(path, limits)
    except TooLarge as exc:
        raise _Stop(0, str(exc).split(": ", 1)[-1]) from None
    except _BROKEN as exc:
        raise _Stop(0, f"not a readable XLSX workbook ({exc})") from None
    try:
        ws = wb[sheet]
        # max_col: openpyxl pads every row to the widest one, however far out it is.
        it = ws.iter_rows(values_only=True, max_col=limits.max_columns)
        next(it, None)
        for n, row in enumerate(it, start=2):
            if n > limits.max_rows:
                raise _Stop(n, f"the sheet has more than {limits.max_rows} rows "
                            "(SHEET_MAX_ROWS); split it or send CSV")
            cells = [_cell(v) for v in row]
            if any(c.strip() for c in cells):
                yield n, cells
    except TooLarge as exc:
        raise _Stop(0, str(exc).split(": ", 1)[-1]) from None
    except _BROKEN as exc:
        raise _Stop(0, f"not a readable XLSX workbook ({exc})") from None
    finally:
        wb.close()


def open_tables(path: Path, *, limits: SheetLimits | None = None,
                on_error: RowSink | None = None) -> list[Table]:
    """Every table in one file: a CSV is one table, an XLSX one per non-empty sheet. `on_error`
    receives the rows that cannot be read (see Table.rows); a whole file that cannot be read
    raises ImportRejected `file:row: reason`."""
    if not path.is_file():
        raise ImportRejected.one(path.name, 0, "no such file")
    limits = limits or default_limits()
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        tables = _xlsx_tables(path, limits)
    elif suffix in (".csv", ".txt", ""):
        enc = _detect_encoding(path)
        with path.open(newline="", encoding=enc) as f:
            try:
                header = next(csv.reader(f), None)
            except csv.Error as exc:
                raise ImportRejected.one(path.name, 1, f"the header row cannot be read ({exc})"
                                   ) from None
        if not header:
            raise ImportRejected.one(path.name, 1, "the file is empty")
        kind, cols = classify(header, path.name, hint=path.stem.lower())
        tables = [Table(path.name, kind, cols, path, encoding=enc)]
    else:
        raise ImportRejected.one(path.name, 0,
                                 f"unsupported file type {suffix!r} (use .csv or .xlsx)")
    for t in tables:
        t.limits, t.on_error = limits, on_error
    return tables


def _xlsx_tables(path: Path, limits: SheetLimits) -> list[Table]:
    check_archive(path, limits)
    try:
        wb = load_bounded(path, limits)
    except TooLarge:
        raise
    except _BROKEN as exc:
        raise ImportRejected.one(path.name, 0, f"not a readable XLSX workbook ({exc})") from None
    tables: list[Table] = []
    try:
        for ws in wb.worksheets:
            label = f"{path.name}[{ws.title}]" if len(wb.worksheets) > 1 else path.name
            try:
                check_dimensions(ws, label, limits)
                header = next(ws.iter_rows(max_row=1, max_col=limits.max_columns,
                                           values_only=True), None)
            except TooLarge:
                raise
            except _BROKEN as exc:
                raise ImportRejected.one(
                    path.name, 0, f"not a readable XLSX workbook ({exc})") from None
            if not header or not any(h for h in header):
                continue
            hint = ws.title.lower() if len(wb.worksheets) > 1 else path.stem.lower()
            kind, cols = classify(list(header), label, hint=hint)
            tables.append(Table(label, kind, cols, path, sheet=ws.title))
    finally:
        wb.close()
    if not tables:
        raise ImportRejected.one(path.name, 0, "the workbook has no table with a header row")
    return tables
