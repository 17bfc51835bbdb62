"""The fleet's one RQ serializer: strict JSON, never pickle.

Why: RQ's default serializer is pickle, and unpickling runs whatever code the bytes
name; anyone who can write to Redis would run code in every worker and API process.
Every job's data, meta and result goes through this class instead (chosen once, as
workers.settings.SERIALIZER, and used by the helpers in workers.jobs). A payload that
is not JSON (a pickled job left by an older version, garbage, a planted object) raises
UnreadablePayload with a reason; it is never handed to pickle or to anything else.
"""
from __future__ import annotations

import json
from typing import Any

PICKLE_MARKER = b"\x80"          # every pickle of protocol 2+ starts with the PROTO opcode
MAX_REASON_CHARS = 200


class UnreadablePayload(ValueError):
    """Bytes from Redis that are not this fleet's JSON; the message says what they look like."""


def describe(data: bytes) -> str:
    """What unreadable bytes look like, for a failure reason (never their content)."""
    if data[:1] == PICKLE_MARKER:
        return "a pickled Python object (RQ's default format, or planted); this fleet reads JSON only"
    return f"not JSON ({len(data)} bytes)"


class StrictJSONSerializer:
    """RQ serializer protocol (dumps/loads) over JSON only.

    dumps refuses NaN/Infinity (not JSON) and anything json cannot encode; loads
    accepts bytes or str and raises UnreadablePayload for anything but JSON text.
    """

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")

    @staticmethod
    def loads(data: bytes | str) -> Any:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if raw[:1] == PICKLE_MARKER:
            raise UnreadablePayload(describe(raw))
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            reason = describe(raw)
            detail = str(exc)[:MAX_REASON_CHARS]
            raise UnreadablePayload(f"{reason}: {detail}") from None
