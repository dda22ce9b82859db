"""setbridge: the connected film set hub."""

__version__ = "0.1.0"
