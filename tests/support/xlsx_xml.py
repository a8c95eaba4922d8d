"""What a spreadsheet program will see in a workbook: read its sheet XML, not openpyxl's view."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from xml.etree import ElementTree

M = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def text_cells(book: Path | bytes) -> dict[str, tuple[str | None, bool, bool]]:
    """Every cell of every sheet that holds text: text → (its t= type, whether it has a
    formula element, whether its style sets Excel's quote prefix)."""
    data = book.read_bytes() if isinstance(book, Path) else book
    out: dict[str, tuple[str | None, bool, bool]] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        styles = ElementTree.fromstring(z.read("xl/styles.xml"))
        xfs = styles.find(f"{M}cellXfs")
        quoted = [xf.get("quotePrefix") in ("1", "true") for xf in (xfs if xfs is not None
                                                                    else [])]
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            sst = ElementTree.fromstring(z.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{M}t")) for si in sst]
        for name in z.namelist():
            if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                continue
            for c in ElementTree.fromstring(z.read(name)).iter(f"{M}c"):
                kind, f = c.get("t"), c.find(f"{M}f")
                if kind == "inlineStr":
                    text = "".join(t.text or "" for t in c.iter(f"{M}t"))
                elif kind == "s":
                    v = c.find(f"{M}v")
                    text = shared[int(v.text or 0)] if v is not None else ""
                elif f is not None:
                    text = "=" + (f.text or "")
                else:
                    continue
                style = int(c.get("s") or 0)
                out[text] = (kind, f is not None, style < len(quoted) and quoted[style])
    return out


def live_formulas(book: Path | bytes) -> list[str]:
    """The text cells a spreadsheet would run: formulas, or text a program may re-evaluate
    (dangerous text without the quote prefix)."""
    return [text for text, (kind, formula, quote) in text_cells(book).items()
            if formula or kind not in ("inlineStr", "s")
            or (text.lstrip("'").startswith(DANGEROUS) and not quote)]
