"""Spreadsheet cells that cannot turn into formulas in the reader's Excel, WPS or LibreOffice.

A cell whose text starts with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula
when a spreadsheet opens the file (`=HYPERLINK(...)`, `-2+3+cmd|...`). The rule:

- XLSX: every text is written as a string cell (`t="inlineStr"`, never `<f>`), and a dangerous
  one also gets Excel's quote prefix so editing the cell keeps it text. The text itself is not
  changed, so the importer reads XLSX cells as they are.
- CSV has no cell types, so a dangerous text gets a leading `'` (OWASP's advice). A text that
  already starts with quotes followed by a dangerous character (`'=x`) gets one more, so the
  importer can strip exactly one: it removes a leading `'` only when the text after all leading
  quotes starts with a dangerous character. Export → import gives back every text exactly.
"""

from __future__ import annotations

from typing import Any

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_FIRST = frozenset("=+-@\t\r'")  # a cheap first look: most cells start with none of these


def formula_like(text: str) -> bool:
    """Whether a spreadsheet would take this text (quotes in front aside) for a formula."""
    return text.lstrip("'").startswith(DANGEROUS)


def csv_escape(value: str) -> str:
    """The CSV cell for a text: one `'` in front when a spreadsheet would run it."""
    if value and value[0] in _FIRST and formula_like(value):
        return "'" + value
    return value


def csv_unescape(cell: str) -> str:
    """The text of one of our own escaped CSV cells (see the module docstring)."""
    return cell[1:] if cell[:1] == "'" and formula_like(cell) else cell


def xlsx_cell(ws: Any, value: Any) -> Any:
    """A write-only cell: text as a string cell (never a formula), other values as they are."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(ws, value=value)
    if isinstance(value, str):
        # openpyxl takes any text that starts with "=" for a formula.
        cell.data_type = "s"
        if formula_like(value):
            cell.quotePrefix = True
    return cell
