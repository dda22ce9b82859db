"""The tests' MQTT probe records what arrived as it arrived, and its waits fail naming what they waited for."""

from __future__ import annotations

import uuid

import pytest
from helpers import Probe, at, on


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5"])
def test_a_probe_records_topic_payload_retain_qos_and_properties(broker, v5: bool) -> None:
    base = f"p{uuid.uuid4().hex[:8]}"
    sender = Probe(broker.port, v5=True)
    try:
        sender.publish(f"{base}/kept", {"v": 1, "n": 1}, retain=True)
        probe = Probe(broker.port, f"{base}/#", v5=v5)
        try:
            kept = probe.wait_for(on("/kept", n=1))
            assert (kept.data, kept.retained, kept.qos) == ({"v": 1, "n": 1}, True, 1)
            sender.publish(f"{base}/raw", b"\xffnot json", qos=0, ResponseTopic=f"{base}/back", CorrelationData=b"\x00c")
            raw = probe.wait_for(at(f"{base}/raw"))
            assert (raw.payload, raw.data, raw.retained, raw.qos) == (b"\xffnot json", None, False, 0)
            if v5:
                assert raw.correlation == b"\x00c" and raw.properties["ResponseTopic"] == f"{base}/back"
            else:
                assert raw.properties == {} and raw.correlation is None
        finally:
            probe.close()
        sender.publish(f"{base}/kept", b"", retain=True)
    finally:
        sender.close()


def test_a_wait_that_times_out_names_what_it_waited_for_and_what_came(broker) -> None:
    base = f"p{uuid.uuid4().hex[:8]}"
    probe = Probe(broker.port, f"{base}/#")
    try:
        probe.publish(f"{base}/other", {"v": 1})
        probe.wait_for(at(f"{base}/other"))
        with pytest.raises(AssertionError, match=r"0.2 s waiting for the roll; last seen .*/other"):
            probe.wait_for(on("/event", type="roll"), timeout=0.2, what="the roll")
        with pytest.raises(AssertionError, match=r"waiting for a message on …/event with \{'type': 'roll'\}"):
            probe.wait_for(on("/event", type="roll"), timeout=0.2)
        assert probe.has_seen(at(f"{base}/other")) and not probe.has_seen(on("/event"))
    finally:
        probe.close()
