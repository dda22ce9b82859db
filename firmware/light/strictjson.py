"""Strict JSON for the light: refuses what the hub's decoder refuses, so the light never applies a
payload the hub would not (contract v1, see docs/mqtt.md).

MicroPython's ``json.loads`` is lenient: it takes trailing commas, ``01``, ``1.``, missing commas
and colons, unknown escapes, raw control characters, overlong UTF-8 and lone surrogates, and keeps
the last of duplicate keys. :func:`loads` first checks the text against RFC 8259 in one pass over
the bytes, then lets ``json.loads`` build the value.
"""

import json

BOM = b"\xef\xbb\xbf"
MAX_DEPTH = 64
"""Arrays and objects nested deeper than this are refused (the hub refuses them too)."""
_WS = b" \t\n\r"
_DIGITS = b"0123456789"
_HEX = b"0123456789abcdefABCDEF"
_ESCAPES = b'"\\/bfnrtu'


def _fail(reason, at):
    raise ValueError("payload is not valid JSON: %s at byte %d" % (reason, at))


def _skip_ws(raw, i, n):
    while i < n and raw[i] in _WS:
        i += 1
    return i


def _utf8(raw, i, n):
    """The index after the UTF-8 sequence starting at ``raw[i]`` (a byte >= 0x80), or fail."""
    b = raw[i]
    if 0xC2 <= b <= 0xDF:
        need, lo, hi = 1, 0x80, 0xBF
    elif b == 0xE0:
        need, lo, hi = 2, 0xA0, 0xBF
    elif b == 0xED:  # U+D800-U+DFFF (surrogates) are not UTF-8
        need, lo, hi = 2, 0x80, 0x9F
    elif 0xE1 <= b <= 0xEF:
        need, lo, hi = 2, 0x80, 0xBF
    elif b == 0xF0:
        need, lo, hi = 3, 0x90, 0xBF
    elif 0xF1 <= b <= 0xF3:
        need, lo, hi = 3, 0x80, 0xBF
    elif b == 0xF4:
        need, lo, hi = 3, 0x80, 0x8F
    else:
        _fail("invalid UTF-8", i)
    if i + need >= n or not lo <= raw[i + 1] <= hi:
        _fail("invalid UTF-8", i)
    for k in range(2, need + 1):
        if not 0x80 <= raw[i + k] <= 0xBF:
            _fail("invalid UTF-8", i)
    return i + need + 1


def _hex4(raw, i, n):
    if i + 4 > n:
        _fail("short \\u escape", i)
    for k in range(i, i + 4):
        if raw[k] not in _HEX:
            _fail("bad \\u escape", i)
    return int(raw[i:i + 4], 16)


def _string(raw, i, n):
    """The index after the string whose opening quote is at ``raw[i]``."""
    i += 1
    while i < n:
        b = raw[i]
        if b == 0x22:  # "
            return i + 1
        if b < 0x20:
            _fail("control character in a string", i)
        if b == 0x5C:  # backslash
            if i + 1 >= n or raw[i + 1] not in _ESCAPES:
                _fail("bad escape", i)
            if raw[i + 1] != 0x75:  # not \u
                i += 2
                continue
            code = _hex4(raw, i + 2, n)
            i += 6
            if 0xDC00 <= code <= 0xDFFF:
                _fail("lone UTF-16 surrogate", i - 6)
            if 0xD800 <= code <= 0xDBFF:  # must be followed by its low half
                if raw[i:i + 2] != b"\\u" or not 0xDC00 <= _hex4(raw, i + 2, n) <= 0xDFFF:
                    _fail("lone UTF-16 surrogate", i - 6)
                i += 6
            continue
        i = _utf8(raw, i, n) if b >= 0x80 else i + 1
    _fail("unterminated string", i)


def _digits(raw, i, n, start):
    """The index after one or more digits at ``raw[i]``; fail (for the number at ``start``) if none."""
    if i >= n or raw[i] not in _DIGITS:
        _fail("bad number", start)
    while i < n and raw[i] in _DIGITS:
        i += 1
    return i


def _number(raw, i, n):
    """The index after the number at ``raw[i]``: ``-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?``, finite."""
    start = i
    if raw[i] == 0x2D:  # -
        i += 1
    i = i + 1 if i < n and raw[i] == 0x30 else _digits(raw, i, n, start)  # a leading 0 stands alone
    fraction = i < n and raw[i] == 0x2E
    if fraction:
        i = _digits(raw, i + 1, n, start)
    exponent = i < n and raw[i] in b"eE"
    if exponent:
        i += 1
        if i < n and raw[i] in b"+-":
            i += 1
        i = _digits(raw, i, n, start)
    if (fraction or exponent) and _out_of_range(raw[start:i]):
        _fail("number out of range", start)
    return i


_ROUNDS_TO_INF = str((1 << 1024) - (1 << 970)).encode()
"""The digits of the smallest number a double rounds up to infinity (309 digits, no trailing zero)."""


def _out_of_range(text):
    """Whether the number ``text`` (with a fraction or exponent) is beyond a double, as the hub refuses
    it. Judged from the digits: boards with single-precision floats overflow above 3.4e38, and
    MicroPython's float() does not round as exactly as the hub's at the very edge."""
    mantissa, _, exp = text.lower().lstrip(b"-").partition(b"e")
    whole, _, frac = mantissa.partition(b".")
    digits = (whole + frac).lstrip(b"0")
    if not digits:
        return False
    # the power of ten of the first significant digit
    power = int(exp or b"0") + (len(whole.lstrip(b"0")) - 1 if whole.lstrip(b"0") else -(len(frac) - len(digits)) - 1)
    return power > 308 or (power == 308 and digits.rstrip(b"0") >= _ROUNDS_TO_INF)


def _key(raw, i, n, keys):
    """The index after ``"key":`` at ``raw[i]``; fail on a key already in ``keys`` (the object's)."""
    if i >= n or raw[i] != 0x22:
        _fail("a key must be a string", i)
    end = _string(raw, i, n)
    key = json.loads(raw[i:end])
    if key in keys:
        raise ValueError("%s: duplicate key; send each field once" % key)
    keys.add(key)
    i = _skip_ws(raw, end, n)
    if i >= n or raw[i] != 0x3A:
        _fail("':' expected", i)
    return _skip_ws(raw, i + 1, n)


def _check(raw, n):
    """Fail unless ``raw`` is one JSON value (with whitespace around it). Iterative, not recursive:
    a board's stack stays small however deep the nesting."""
    stack = []  # the open containers: an object's keys (a set), or None for an array
    i = _skip_ws(raw, 0, n)
    while True:
        if i >= n:
            _fail("a value is missing", i)
        b = raw[i]
        if b == 0x7B or b == 0x5B:  # { or [
            if len(stack) >= MAX_DEPTH:
                _fail("nested more than %d deep" % MAX_DEPTH, i)
            i = _skip_ws(raw, i + 1, n)
            if i < n and raw[i] == (0x7D if b == 0x7B else 0x5D):
                i += 1  # empty: a complete value
            else:
                stack.append(set() if b == 0x7B else None)
                if b == 0x7B:
                    i = _key(raw, i, n, stack[-1])
                continue
        elif b == 0x22:
            i = _string(raw, i, n)
        elif b == 0x2D or b in _DIGITS:
            i = _number(raw, i, n)
        else:
            for word in (b"true", b"false", b"null"):
                if raw[i:i + len(word)] == word:
                    i += len(word)
                    break
            else:
                _fail("unexpected character", i)
        # after a complete value: close what it completes, or move on to the next element
        while True:
            i = _skip_ws(raw, i, n)
            if not stack:
                return i
            keys = stack[-1]
            if i < n and raw[i] == (0x5D if keys is None else 0x7D):
                stack.pop()
                i += 1
                continue
            if i >= n or raw[i] != 0x2C:
                _fail("',' or '%s' expected" % ("]" if keys is None else "}"), i)
            i = _skip_ws(raw, i + 1, n)
            if keys is not None:
                i = _key(raw, i, n, keys)
            break


def loads(raw):
    """The JSON value of ``raw`` (bytes; one leading BOM is ignored), or ValueError with a reason."""
    if isinstance(raw, str):
        raw = raw.encode()
    if raw[:3] == BOM:
        raw = raw[3:]
    n = len(raw)
    end = _check(raw, n)
    if end != n:
        _fail("extra data", end)
    return json.loads(raw)
