"""Text from the bus made safe for a terminal: no control character or escape sequence gets through.

>>> terminal("ROLLING\x1b[2K\rtake 99")
'ROLLING\\x1b[2K\\rtake 99'
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

_UNSAFE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
"""Controls (C0, DEL, C1 such as CSI), format characters (bidi overrides), surrogates, private
use, unassigned code points, line and paragraph separators."""


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _UNSAFE or (ch.isspace() and ch != " ")


def _escaped(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _json_escaped(ch: str) -> str:
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def terminal(text: str) -> str:
    """``text`` with every unsafe character written as a visible escape (``\\x1b``, ``\\u202e``)."""
    if text.isprintable():  # the common case; isprintable() is false for every unsafe character
        return text
    return "".join(_escaped(ch) if _unsafe(ch) else ch for ch in text)


def json_line(value: Any) -> str:
    """``value`` as one line of JSON, readable (non-ASCII kept) yet with every unsafe character escaped."""
    return json_text(json.dumps(value, ensure_ascii=False))


def json_text(text: str) -> str:
    """JSON text (one line) with every unsafe character inside its strings written as a ``\\u`` escape:
    the same JSON value, safe for a terminal (``\\u202e``, C1 controls such as ``\\u009b``)."""
    if text.isprintable():
        return text
    return "".join(_json_escaped(ch) if _unsafe(ch) else ch for ch in text)
