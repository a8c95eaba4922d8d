"""Every domain error in one place; webhooks/ maps them to status codes, bot/ to replies."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "domain_error"


class NotFound(DomainError):
    code = "not_found"


class PermissionDenied(DomainError):
    code = "permission_denied"


class InvalidInput(DomainError):
    code = "invalid_input"


class MediaRejected(InvalidInput):
    """A photo, voice note, video or document was refused.

    `str(exc)` is a short, polite Chinese sentence a resident can read; `reason` is a short
    English reason for the logs (e.g. "too_large: 21000000 > 20971520 bytes").
    """

    code = "media_rejected"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def __repr__(self) -> str:
        return f"MediaRejected({self.message!r}, reason={self.reason!r})"


class MediaStoreUnavailable(DomainError):
    """The media store cannot keep a file now (not writable, or full): our fault, not the
    sender's; `str(exc)` is a polite sentence, `reason` a short English one for the logs."""

    code = "media_unavailable"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Conflict(DomainError):
    """The thing changed under the caller (a stale button, a duplicate)."""

    code = "conflict"


class TooManyAttempts(DomainError):
    """Too many failed sign-ins lately; try again after `retry_after` seconds."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidTransition(Conflict):
    code = "invalid_transition"


class StaleAction(Conflict):
    code = "stale_action"


@dataclass(frozen=True)
class RowError:
    """One bad row of an import file."""

    file: str
    row: int
    reason: str
    unit: str = ""  # "feature " for a GeoJSON file, whose entries are not rows

    def __str__(self) -> str:
        return f"{self.file}:{self.unit}{self.row}: {self.reason}"


class ImportRejected(InvalidInput):
    """An import found bad rows; nothing was written."""

    code = "import_rejected"

    def __init__(self, errors: list[RowError], *, truncated: int = 0) -> None:
        self.errors = errors
        self.truncated = truncated
        more = f" (and {truncated} more)" if truncated else ""
        super().__init__(f"import rejected: {len(errors) + truncated} bad row(s){more}")

    def report(self) -> str:
        lines = [str(e) for e in self.errors]
        if self.truncated:
            lines.append(f"... and {self.truncated} more bad rows")
        return "\n".join(lines)
