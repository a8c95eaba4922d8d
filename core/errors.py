"""Every domain error in one place; webhooks/ maps them to status codes, bot/ to replies.

An error names what went wrong with a message key and keyword parameters
(`NotFound("case_not_found", case=12)`); the sentence for each key, in every language, lives in
`bot/flows/texts.py`. `str(exc)` is the key and its parameters, for the logs only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Phrase:
    """A piece of wording inside a parameter (a verb, a state's name, a nested refusal),
    rendered in the reader's language like the sentence around it."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return _describe(self.key, self.params)

    def __hash__(self) -> int:  # equal phrases share a key; the params may be lists
        return hash(self.key)


def phrase(key: str, /, **params: Any) -> Phrase:
    """A phrase with keyword parameters."""
    return Phrase(key, params)


def _describe(key: str, params: Mapping[str, Any]) -> str:
    if not params:
        return key
    shown = ", ".join(f"{k}={v if isinstance(v, Phrase) else repr(v)}" for k, v in params.items())
    return f"{key}({shown})"


def as_json(value: Any) -> Any:
    """A parameter as JSON, to keep with an event (a Phrase as {"phrase": key, "params": …})."""
    if isinstance(value, Phrase):
        return {"phrase": value.key, "params": as_json(dict(value.params))}
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    """A parameter kept by `as_json`, back."""
    if isinstance(value, dict):
        if set(value) == {"phrase", "params"}:
            return Phrase(value["phrase"], from_json(value["params"]))
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "domain_error"

    def __init__(self, key: str, /, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params: dict[str, Any] = params

    def __str__(self) -> str:
        return _describe(self.key, self.params)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self})"


class NotFound(DomainError):
    code = "not_found"


class PermissionDenied(DomainError):
    code = "permission_denied"


class InvalidInput(DomainError):
    code = "invalid_input"


class MediaRejected(InvalidInput):
    """A photo, voice note, video or document was refused.

    The key and parameters make a short, polite sentence a resident can read; `reason` is a
    short English reason for the logs (e.g. "too_large: 21000000 > 20971520 bytes").
    """

    code = "media_rejected"

    def __init__(self, key: str, /, *, reason: str, **params: Any) -> None:
        super().__init__(key, **params)
        self.reason = reason

    def __repr__(self) -> str:
        return f"MediaRejected({self}, reason={self.reason!r})"


class MediaStoreUnavailable(DomainError):
    """The media store cannot keep a file now (not writable, or full): our fault, not the
    sender's; `reason` is a short English one for the logs."""

    code = "media_unavailable"

    def __init__(self, key: str, /, *, reason: str, **params: Any) -> None:
        super().__init__(key, **params)
        self.reason = reason


class Conflict(DomainError):
    """The thing changed under the caller (a stale button, a duplicate)."""

    code = "conflict"


class TooManyAttempts(DomainError):
    """Too many failed sign-ins lately; try again after `retry_after` seconds."""

    code = "too_many_attempts"

    def __init__(self, key: str, /, *, retry_after: int, **params: Any) -> None:
        super().__init__(key, **params)
        self.retry_after = retry_after


class InvalidTransition(Conflict):
    code = "invalid_transition"


class StaleAction(Conflict):
    code = "stale_action"


@dataclass(frozen=True)
class RowError:
    """One bad row of an import file. `reason` is plain English for a file-format fault (what
    the console's operator reads), or a Phrase for a refusal an admin in chat reads."""

    file: str
    row: int
    reason: str | Phrase
    unit: str = ""  # "feature " for a GeoJSON file, whose entries are not rows

    def render(self, say: Any = str) -> str:
        """`file:row: reason`, the reason put into words by `say` (a Phrase → str)."""
        reason = say(self.reason) if isinstance(self.reason, Phrase) else self.reason
        return f"{self.file}:{self.unit}{self.row}: {reason}"

    def __str__(self) -> str:
        return self.render()


class ImportRejected(InvalidInput):
    """An import found bad rows; nothing was written."""

    code = "import_rejected"

    def __init__(self, errors: list[RowError], *, truncated: int = 0) -> None:
        super().__init__("import_rejected", bad=len(errors) + truncated)
        self.errors = errors
        self.truncated = truncated

    @classmethod
    def one(cls, file: str, row: int, reason: str | Phrase) -> ImportRejected:
        """A file refused at one row (0: the whole file), e.g. one that is no table."""
        return cls([RowError(file, row, reason)])

    def __str__(self) -> str:
        more = f" (and {self.truncated} more)" if self.truncated else ""
        return f"import rejected: {len(self.errors) + self.truncated} bad row(s){more}"

    def report(self, say: Any = str) -> str:
        """One `file:row: reason` line per bad row; `say` puts Phrase reasons into words."""
        lines = [e.render(say) for e in self.errors]
        if self.truncated:
            lines.append(f"... and {self.truncated} more bad rows")
        return "\n".join(lines)
