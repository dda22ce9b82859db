"""The private test broker survives a port taken between picking it and binding it (parallel runs)."""

from __future__ import annotations

import socket

import pytest

from setbridge.sim.broker import PrivateBroker
from setbridge.errors import SetbridgeError

pytestmark = pytest.mark.integration


def test_a_taken_port_is_replaced_by_a_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = PrivateBroker()
        broker.port = taken.getsockname()[1]  # as if another process took it meanwhile
        try:
            broker.start()
            assert broker.port != taken.getsockname()[1]
            with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
                pass
        finally:
            broker.close()


def test_a_port_asked_for_is_kept_or_refused():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = PrivateBroker(port=taken.getsockname()[1])
        try:
            with pytest.raises(SetbridgeError, match="in use"):
                broker.start()
        finally:
            broker.close()
