"""The error tree shared by every strata package.

Every error strata raises on purpose derives from :class:`StrataError`. The editor API
turns each class into one HTTP status in a single middleware, so a handler raises the
domain error and never builds an HTTP response for a failure itself.
"""

from __future__ import annotations


def describe(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an exception, never blank (a ``TimeoutError()`` has no
    message: its type is the cause), cut to ``limit`` characters."""
    text = str(exc).strip()
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name)[:limit]


class StrataError(Exception):
    """Root of strata's errors. ``code`` is the stable machine-readable name."""

    code = "strata_error"
    status = 500


class InvalidInput(StrataError, ValueError):
    """A caller sent something malformed: an id, a cursor, a body, a key."""

    code = "invalid_input"
    status = 400


class PayloadTooLarge(InvalidInput):
    """A body or patch over its configured limit."""

    code = "too_large"
    status = 413


class RangeNotSatisfiable(InvalidInput):
    """A ``Range`` header that is not one range within the object."""

    code = "range_not_satisfiable"
    status = 416


class RunTimeout(StrataError, TimeoutError):
    """A rerun or function run went past its server-side time limit; nothing was stored."""

    code = "run_timeout"
    status = 504


class NotFound(StrataError, LookupError):
    """A canvas, handler, trace or object that does not exist."""

    code = "not_found"
    status = 404


class TraceNotFound(NotFound, FileNotFoundError):
    """No trace with that id is visible for the canvas."""

    code = "trace_not_found"


class ObjectNotFound(NotFound, FileNotFoundError):
    """The object store has no object under that key."""

    code = "object_not_found"


class AlreadyExists(StrataError, FileExistsError):
    """A create-only put found the key already taken; the stored bytes were kept."""

    code = "already_exists"
    status = 409


class Unauthorized(StrataError):
    """No bearer token, or one that matches no token at all."""

    code = "unauthorized"
    status = 401


class Forbidden(StrataError):
    """A valid token used for a canvas it was not issued for, or a bad signature."""

    code = "forbidden"
    status = 403


class IntegrityError(StrataError):
    """Stored bytes do not match the length or sha256 their index row recorded."""

    code = "integrity_error"
    status = 502


class ConfigError(StrataError):
    """A setting is missing or malformed. The message names the setting."""

    code = "config_error"


class StoreUnavailable(StrataError, ConnectionError):
    """The object store did not answer or answered with a transient failure."""

    code = "store_unavailable"
    status = 503


class RoutingError(StrataError):
    """Handler registrations that cannot coexist (ambiguous routes, duplicate ids)."""

    code = "routing_error"


class ApiError(StrataError):
    """A strata server answered a client's request with an error status.

    ``status`` is the HTTP status it answered, ``code`` and ``message`` what its JSON
    error said (the reason phrase or the start of the body when it sent no JSON).
    """

    code = "api_error"

    def __init__(self, request: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{request} answered {status} ({code}): {message}")
        self.request = request
        self.status = status
        self.code = code
        self.message = message


class ServerUnreachable(StrataError, ConnectionError):
    """A strata server could not be reached: refused, unresolvable, or no answer in time."""

    code = "server_unreachable"
    status = 503
