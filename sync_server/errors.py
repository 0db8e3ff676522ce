"""The hub's one exception tree; each error knows its HTTP status and stable code.

Library code raises these; the API turns them into ``{"error": code, "detail": ...}`` with
the status, and the CLI into one ``error:`` line. Codes are part of the protocol
(docs/sync-protocol.md): clients decide on them, never on the detail text::

    HubError
    ├── SettingsError          the hub cannot start as configured (500 if ever raised late)
    ├── BadRequest             400 malformed_batch, invalid_record, invalid_request,
    │   │                          invalid_policy, territory_required
    │   ├── InvalidField       400 invalid_field (carries the field's name and the reason)
    │   └── InvalidRows        400 invalid_rows (carries problems: line, field, reason)
    ├── Unauthorized           401 invalid_token, invalid_code
    ├── Forbidden              403 forbidden, csrf (the dashboard: a role, a forged form)
    ├── NotFound               404 not_found, no_bundle
    ├── Conflict               409 seq_conflict, stream_type, already_exists, no_policy_rules,
    │                              revoked, already_acknowledged
    ├── RequestTimeout         408 body_timeout
    ├── TooLarge               413 too_large
    ├── UnsupportedMediaType   415 unsupported_media_type
    ├── TooManyRequests        429 too_many_attempts (carries retry_after_s)
    └── Unavailable            503 busy (carries retry_after_s)
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "HubError",
    "InvalidField",
    "InvalidRows",
    "NotFound",
    "RequestTimeout",
    "SettingsError",
    "TooLarge",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
]


class HubError(Exception):
    """Root of every error the hub raises on purpose."""

    status = 500
    default_code = "internal"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code


class SettingsError(HubError):
    """The hub's settings are invalid or unsafe (a default secret outside demo mode)."""

    default_code = "settings"


class BadRequest(HubError):
    """The request is malformed: a batch that does not decode, a bad parameter."""

    status = 400
    default_code = "invalid_request"


class InvalidField(BadRequest):
    """One field of a badge is wrong; ``field`` names it so a CSV report can point at it."""

    default_code = "invalid_field"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidRows(BadRequest):
    """Lines of an import are wrong; ``problems`` holds ``{line, field, reason}`` for each."""

    default_code = "invalid_rows"

    def __init__(self, detail: str, *, problems: list[dict[str, object]]) -> None:
        super().__init__(detail)
        self.problems = problems


class Unauthorized(HubError):
    """No token, an unknown or revoked token, or an invalid enrollment code."""

    status = 401
    default_code = "invalid_token"


class Forbidden(HubError):
    """Signed in, but not allowed: a page beyond the role, a form without its CSRF token."""

    status = 403
    default_code = "forbidden"


class NotFound(HubError):
    """Nothing by that name *for this caller*: other territories' objects look the same."""

    status = 404
    default_code = "not_found"


class Conflict(HubError):
    """The request contradicts what is stored (a seq reused with other content, a duplicate)."""

    status = 409
    default_code = "conflict"


class RequestTimeout(HubError):
    """The request's body did not arrive in time (``--body-timeout``): a link lost mid-body
    or a client too slow to be let hold a push slot; the connection is closed."""

    status = 408
    default_code = "body_timeout"


class TooLarge(HubError):
    """The body exceeds the request limit or inflates beyond the decoded limit."""

    status = 413
    default_code = "too_large"


class UnsupportedMediaType(HubError):
    """A content type or content encoding the hub does not speak."""

    status = 415
    default_code = "unsupported_media_type"


class TooManyRequests(HubError):
    """Too many failed attempts from one client; ``retry_after_s`` says when to come back."""

    status = 429
    default_code = "too_many_attempts"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class Unavailable(HubError):
    """The hub is too busy to take this request now; ``retry_after_s`` says when to retry."""

    status = 503
    default_code = "busy"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
