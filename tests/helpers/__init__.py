"""Test helpers, imported by the test files (``conftest.py`` keeps only fixtures and hooks).

The everyday ones are here: ``from helpers import Probe, on, wait_until, make_settings``. The
specialised ones live in their modules: ``helpers.broker`` (brokers with users and certificates),
``helpers.firmware`` (the light firmware under MicroPython), ``helpers.lot``, ``helpers.metrics``,
``helpers.offload``, ``helpers.speech``, ``helpers.timecode``, ``helpers.web``.
"""

from helpers.hub import HubProcess, make_settings, running_hub, wait_online, write_config
from helpers.probe import Message, Probe, at, on
from helpers.waiting import wait_until

__all__ = ["HubProcess", "Message", "Probe", "at", "make_settings", "on", "running_hub", "wait_online", "wait_until",
           "write_config"]
