"""The firmware's version, written by script/firmware_package.py from setbridge's."""

VERSION = "0.1.0"
