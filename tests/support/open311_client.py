"""A GeoReport v2 client written from the spec alone (wiki.open311.org/GeoReport_v2), not from
our code: it knows the resource names, the form-encoded POST, the `.xml`/`.json` suffix and
the XML shapes (a root holding repeated elements of fields), nothing of linzhang."""

from __future__ import annotations

from typing import Any

import httpx
from defusedxml import ElementTree as SafeET


class GeoReportError(Exception):
    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{status}: {errors}")
        self.status, self.errors = status, errors


def _rows(xml: bytes) -> list[dict[str, Any]]:
    root = SafeET.fromstring(xml)
    return [{field.tag: field.text for field in item} for item in root]


class GeoReport:
    """GET services, GET requests, POST requests, GET tokens (and the FixMyStreet updates)."""

    def __init__(self, endpoint: str, api_key: str, *, fmt: str = "xml") -> None:
        self.endpoint, self.api_key, self.fmt = endpoint.rstrip("/"), api_key, fmt

    def _parse(self, r: httpx.Response) -> list[dict[str, Any]]:
        if self.fmt == "xml":
            assert r.headers["content-type"].startswith("text/xml")
            rows = _rows(r.content)
        else:
            assert r.headers["content-type"].startswith("application/json")
            rows = r.json()
        if r.status_code != 200:
            raise GeoReportError(r.status_code, rows)
        return rows

    def _get(self, resource: str, **params: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in params.items() if v is not None}
        return self._parse(httpx.get(f"{self.endpoint}/{resource}.{self.fmt}", params=params))

    def services(self) -> list[dict[str, Any]]:
        return self._get("services")

    def post_request(self, **fields: Any) -> dict[str, Any]:
        r = httpx.post(f"{self.endpoint}/requests.{self.fmt}",
                       data={"api_key": self.api_key, **fields},
                       headers={"Content-Type":
                                "application/x-www-form-urlencoded; charset=utf-8"})
        return self._parse(r)[0]

    def requests(self, **params: Any) -> list[dict[str, Any]]:
        return self._get("requests", api_key=self.api_key, **params)

    def request(self, service_request_id: str) -> dict[str, Any]:
        return self._get(f"requests/{service_request_id}", api_key=self.api_key)[0]

    def token(self, token: str) -> dict[str, Any]:
        return self._get(f"tokens/{token}")[0]

    def updates(self, **params: Any) -> list[dict[str, Any]]:
        return self._get("servicerequestupdates", api_key=self.api_key, **params)
