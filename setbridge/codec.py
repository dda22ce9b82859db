"""The strict JSON codec every inbound payload goes through, and the one-line form of its errors.

Decoding is stricter than ``json.loads`` (no duplicate keys, no lone surrogates, no ``NaN``, ``v``
exactly the integer 1) and validation uses exact JSON types, so every reader of the bus (the hub,
pages, the lights' firmware) holds the same values. The payload models are in :mod:`setbridge.messages`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import PayloadError

MAX_PAYLOAD_BYTES = 64 * 1024
"""Inbound payloads larger than this are rejected unread."""
MAX_DEPTH = 64
"""Arrays and objects nested deeper than this are rejected (no payload of the contract needs more;
the lights' firmware refuses them too, whatever its stack)."""

M = TypeVar("M", bound=BaseModel)


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Duplicate(key)
        obj[key] = value
    return obj


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _surrogate_at(data: Any) -> str | None:
    """The path of the first string (key or value) holding a lone UTF-16 surrogate, or None."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return path or "payload"
        elif isinstance(item, dict):
            for key, value in item.items():
                sub = f"{path}.{key}" if path else str(key)
                if _SURROGATE.search(key):
                    return (path or "payload") + " (a key)"
                stack.append((sub, value))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(item))
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_float=_finite, parse_constant=_no_constant)
"""One decoder for every payload (``json.loads`` with hooks builds a new one per call)."""
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _depth(data: Any) -> int:
    """How deeply arrays and objects nest in ``data`` (an object of scalars is 1)."""
    deepest = 0
    stack: list[tuple[int, Any]] = [(1, data)]
    while stack:
        depth, item = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((depth + 1, child) for child in children)
    return deepest


def decode_object(raw: bytes | str) -> dict[str, Any]:
    """Strictly decode ``raw`` as a v1 JSON object; raise :class:`PayloadError` with a one-line reason.

    Rejected: more than ``MAX_PAYLOAD_BYTES``, invalid UTF-8 or JSON, ``NaN``/``Infinity`` and
    numbers out of range, duplicate keys, lone UTF-16 surrogates (``"\\ud800"``), nesting deeper than
    ``MAX_DEPTH``, anything but an object, and a ``v`` that is not exactly the integer 1 (``true``
    and ``1.0`` are not).
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload is {len(raw)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        # Strict UTF-8: a surrogate encoded as bytes (b"\xed\xa0\x80") is not UTF-8; a leading BOM is ignored.
        data = _DECODER.decode(raw.decode("utf-8").removeprefix("\ufeff"))
    except _Duplicate as exc:
        raise PayloadError(f"{exc.args[0]}: duplicate key; send each field once") from None
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("payload is nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, 1e400, integers of thousands of digits
        raise PayloadError(f"payload is not valid JSON: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(data, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(data).__name__}")
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise PayloadError(f"payload is nested more than {MAX_DEPTH} deep; send a flatter object")
    # A surrogate can only come from a \\uD800-\\uDFFF escape (raw ones are invalid UTF-8): look only then.
    where = _surrogate_at(data) if _SURROGATE_ESCAPE.search(raw) else None
    if where is not None:
        raise PayloadError(f"{where}: contains a lone UTF-16 surrogate; send valid Unicode text")
    version = data.get("v")
    if type(version) is not int or version != 1:
        shown = json.dumps(version)[:40] if "v" in data else "missing"
        raise PayloadError(f"v: unsupported payload version {shown}; this hub speaks the integer 1 (\"v\": 1)")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Validate a decoded object as ``model`` with exact JSON types (``true`` is not 1, ``"12"`` is
    not 12); unknown fields are ignored unless the model forbids them."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise PayloadError(one_line(exc)) from None


def one_line(exc: ValidationError) -> str:
    """The first validation error as ``field: message (and N more)``."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc}: {first['msg']}{more}"


def parse_payload(model: type[M], raw: bytes | str) -> M:
    """Decode and validate ``raw`` as ``model``; raise :class:`PayloadError` with a one-line reason."""
    return validate(model, decode_object(raw))


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What :func:`transaction_of` returns for a payload without a transaction."""

_TRANSACTION = re.compile(rb'"transaction"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)')


def transaction_of(raw: bytes) -> Any:
    """The transaction of a rejected request, exactly as sent, so that it still gets an answer;
    :data:`MISSING` when there is none (or ``null``).

    A payload that is not JSON or over the size limit is searched in its first 4 KiB only.
    """
    data: Any = None
    if len(raw) <= MAX_PAYLOAD_BYTES:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            data = None
    if isinstance(data, dict):
        value = data.get("transaction")
        return MISSING if value is None else value
    match = _TRANSACTION.search(raw[:4096])
    if not match:
        return MISSING
    try:
        return json.loads(match.group(1))
    except ValueError:
        return MISSING
