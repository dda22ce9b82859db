"""The hub service: set controller, state store, systemd integration and GPIO panel.

>>> from setbridge.hub import Hub
>>> hub = Hub(settings); hub.start()
"""

from .service import Hub

__all__ = ["Hub"]
