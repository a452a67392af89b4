"""Errors: one class, with the same stable codes as gpufeed's src/errors.ts."""
from __future__ import annotations

from typing import Any, Dict, Optional

INVALID_OPTION = "GPUFEED_INVALID_OPTION"
MANIFEST_NOT_FOUND = "GPUFEED_MANIFEST_NOT_FOUND"
CLOSED = "GPUFEED_CLOSED"
PROTOCOL = "GPUFEED_PROTOCOL"
STALL = "GPUFEED_STALL"
INTERNAL = "GPUFEED_INTERNAL"


class GpufeedError(Exception):
    """An error from gpufeed. ``code`` is stable (``GPUFEED_*``, as in src/errors.ts); the message
    may change. Errors raised by the Node server keep its code, message and details."""

    def __init__(self, code: str, message: str, details: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details: Dict[str, Any] = dict(details or {})

    @classmethod
    def from_message(cls, msg: Dict[str, Any]) -> "GpufeedError":
        """From a bridge ``error`` message."""
        code = msg.get("code")
        details = msg.get("details")
        return cls(
            code if isinstance(code, str) and code else INTERNAL,
            str(msg.get("message", "")),
            details if isinstance(details, dict) else None,
        )
