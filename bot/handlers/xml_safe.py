"""XML from WeChat and WeCom, read without trusting it: no DTDs, no entities, no external refs.

wechatpy reads XML with xmltodict (expat); a body with a DOCTYPE could carry an entity bomb or
an external entity, so every body (the envelope and the decrypted message) is screened here
with defusedxml first, and only plain `<xml>` documents go further.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

MAX_XML = 256 * 1024  # callbacks are a few kB; media come by MediaId, never inline


class BadXml(ValueError):
    """Not a plain WeChat XML document."""


def xml_fields(body: bytes | str) -> dict[str, Any]:
    """The children of `<xml>` as a dict (one level of nesting kept as dicts)."""
    if len(body) > MAX_XML:
        raise BadXml("body too large")
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ParseError, ValueError) as exc:
        raise BadXml(f"{type(exc).__name__}: {exc}") from None
    if root.tag != "xml":
        raise BadXml(f"root is <{root.tag}>, not <xml>")
    out: dict[str, Any] = {}
    for child in root:
        if len(child):
            out[child.tag] = {g.tag: (g.text or "") if not len(g) else
                              {h.tag: h.text or "" for h in g} for g in child}
        else:
            out[child.tag] = child.text or ""
    return out
