"""The dashboard's XLSX downloads: plain tables, percentages and hours as number cells, typed
text never a formula."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from fastapi.responses import Response

from webhooks.dashboard_auth import XLSX_MIME


class Pct(float):
    """A share (0–1) shown as a percentage in a spreadsheet (number format 0.0%)."""


class Hours(float):
    """A duration in hours, shown with one decimal."""


def pct_cell(x: float | None) -> Pct | None:
    return None if x is None else Pct(x)


def hours_cell(seconds: float | None) -> Hours | None:
    return None if seconds is None else Hours(round(seconds / 3600, 1))


_FORMATS = {Pct: "0.0%", Hours: "0.0"}


def xlsx(sheets: list[tuple[str, list[list[Any]]]]) -> Response:
    """A workbook of plain tables; first row of each is the header. Written in openpyxl's
    streaming mode: a district's sheet of every 邻长 has tens of thousands of rows."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    from core.hierarchy.cells import xlsx_cell

    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    for title, rows in sheets:
        ws = wb.create_sheet(title)
        widths: dict[int, int] = {}
        for row in rows:
            for i, v in enumerate(row):
                widths[i] = max(widths.get(i, 0), len(str("" if v is None else v)))
        for i, w in widths.items():
            ws.column_dimensions[get_column_letter(i + 1)].width = min(max(10, w * 2), 50)
        for n, row in enumerate(rows):
            values = [v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in row]
            # Node and people names are typed by users: text cells, never formulas.
            cells = [xlsx_cell(ws, v) for v in values]
            for cell, v in zip(cells, values, strict=True):
                fmt = _FORMATS.get(type(v)) if isinstance(v, float) else None
                if fmt:
                    cell.number_format = fmt
            if n == 0:
                for cell in cells:
                    cell.font = bold
            ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    return Response(buf.getvalue(), media_type=XLSX_MIME)
