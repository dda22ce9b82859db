"""ReopeningInput, the loop the voice listener and the LTC input share: a fault is reported and the
input opened again, PortAudio re-initialised first for a microphone; an ended input ends the loop."""

from __future__ import annotations

import threading

import pytest

import setbridge.audio.mic as mic_module
from setbridge.audio.base import AudioSource
from setbridge.audio.reopen import ReopeningInput
from setbridge.errors import AudioError


class Source(AudioSource):
    """Fails to open, fails while reading, or gives two blocks and ends; counts its closes."""

    def __init__(self, kind: str, closed: list[str]):
        self.kind, self.closed = kind, closed

    def open(self) -> None:
        if self.kind == "open fails":
            raise AudioError("no such device")

    def blocks(self):
        yield bytes(320)
        if self.kind == "read fails":
            raise AudioError("device unplugged")
        yield bytes(320)

    def close(self) -> None:
        self.closed.append(self.kind)


@pytest.mark.parametrize("mic", [True, False], ids=["mic", "file"])
def test_a_fault_is_reported_and_the_input_opened_again_until_it_ends(mic, monkeypatch):
    closed: list[str] = []
    kinds = iter(["open fails", "read fails", "ends"])
    faults: list[str] = []
    blocks: list[int] = []
    ended = threading.Event()
    reinits: list[int] = []
    monkeypatch.setattr(mic_module, "reinit_portaudio", lambda: reinits.append(1))  # no PortAudio here

    def listen(source: AudioSource) -> bool:
        for block in source:
            blocks.append(len(block))
        return True

    loop = ReopeningInput("test-input", lambda: Source(next(kinds), closed), listen,
                          on_fault=lambda exc: faults.append(str(exc)), on_end=ended.set, reopen_s=0.01, mic=mic)
    loop.start()
    try:
        assert ended.wait(5)
    finally:
        loop.stop()
    assert faults == ["no such device", "device unplugged"]
    assert closed == ["open fails", "read fails", "ends"]  # every source closed, the failed ones too
    assert blocks == [320, 320, 320]
    assert len(reinits) == (2 if mic else 0)


def test_stop_closes_the_open_source_and_reports_no_fault():
    closed: list[str] = []
    reading = threading.Event()
    faults: list[str] = []
    ended: list[bool] = []
    loop: ReopeningInput

    def listen(source: AudioSource) -> bool:
        reading.set()
        while not loop.stopping():
            threading.Event().wait(0.01)
        return False

    loop = ReopeningInput("test-input", lambda: Source("ends", closed), listen,
                          on_fault=lambda exc: faults.append(str(exc)), on_end=lambda: ended.append(True),
                          reopen_s=0.01, mic=False)
    loop.start()
    assert reading.wait(5)
    loop.stop()
    assert closed and not faults and not ended
