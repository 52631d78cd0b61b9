"""Exceptions aioaccess raises itself (Thrift-level ones live in the schema)."""

from __future__ import annotations

__all__ = [
    "AioaccessError",
    "BackendUnavailable",
    "CorruptCommunication",
    "FrameTooLarge",
    "InvalidCommId",
    "InvalidCommunication",
    "ProtocolError",
    "ReplyTooLarge",
]


class AioaccessError(Exception):
    """Base class of aioaccess's own errors."""


class ProtocolError(AioaccessError):
    """Bytes on a connection that are not a framed compact Thrift message."""


class FrameTooLarge(ProtocolError):
    """A frame header declared a length outside ``1..max_frame_size``."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes is outside the allowed 1..{limit}")
        self.size = size
        self.limit = limit


class ReplyTooLarge(AioaccessError):
    """A reply would exceed the server's limit (e.g. a fetch repeating one big id)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the reply would be {size} bytes, over this server's limit of {limit}; "
                         "ask for fewer or smaller Communications per call")
        self.size = size
        self.limit = limit


class InvalidCommId(AioaccessError, ValueError):
    """A Communication id a store refuses, with the rule it breaks."""

    def __init__(self, comm_id: str, rule: str) -> None:
        super().__init__(f"invalid Communication id {comm_id!r}: {rule}")
        self.comm_id = comm_id
        self.rule = rule


class CorruptCommunication(AioaccessError):
    """Stored bytes for an id that do not decode as one Communication."""

    def __init__(self, comm_id: str, reason: str) -> None:
        super().__init__(f"stored Communication {comm_id!r} is corrupt: {reason}")
        self.comm_id = comm_id
        self.reason = reason


class InvalidCommunication(CorruptCommunication):
    """Bytes or a Communication a store refuses: malformed, or a required field missing at some depth."""

    def __init__(self, comm_id: str, reason: str) -> None:
        AioaccessError.__init__(self, f"refusing to store Communication {comm_id!r}: {reason}")
        self.comm_id = comm_id
        self.reason = reason


class BackendUnavailable(AioaccessError):
    """A storage backend failed or did not answer in time."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend} backend unavailable: {reason}")
        self.backend = backend
        self.reason = reason
