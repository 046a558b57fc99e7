"""Queue errors carry the HTTP status they map to, so the API layer stays a thin translation."""

from __future__ import annotations

from typing import Any


class QueueError(Exception):
    status = 400

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def detail(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


class NotFound(QueueError):
    status = 404


class Forbidden(QueueError):
    status = 403


class Conflict(QueueError):
    """409: lost lease, stale version, changed listing, already decided, held by someone else."""

    status = 409


class Invalid(QueueError):
    status = 422
