"""Millisecond ticks that wrap on boards: always compare with ``diff``."""

import time

try:
    ticks = time.ticks_ms
    diff = time.ticks_diff
except AttributeError:  # CPython, for unit tests of the plain modules

    def ticks():
        return int(time.monotonic() * 1000)

    def diff(a, b):
        return a - b
