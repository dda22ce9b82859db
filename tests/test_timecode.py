"""LTC decoding and rec-run detection on real libltc audio: every frame rate and level, either
polarity, dropouts and bursts, 44.1 and 48 kHz; the binding's struct layouts; ``setbridge timecode``."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import numpy as np
import pytest

from timecode_helpers import code, quiet, write_wav

from setbridge.recorder.ltc import LTCFrame, LTCFrameExt, LtcDecoder, LtcEncoder, SMPTETimecode
from setbridge.recorder.reader import read_runs
from setbridge.recorder.runs import RunDetector

pytestmark = pytest.mark.integration

RATES = {23.976: False, 24.0: False, 25.0: False, 29.97: True, 30.0: False}
"""Frame rate → drop frame."""


def test_struct_layouts_match_ltc_h():
    # sizeof/offsetof as gcc lays out ltc.h's structs on this platform
    assert ctypes.sizeof(LTCFrame) == 12 and ctypes.sizeof(SMPTETimecode) == 13
    assert ctypes.sizeof(LTCFrameExt) == 368
    assert (LTCFrameExt.off_start.offset, LTCFrameExt.off_end.offset, LTCFrameExt.reverse.offset,
            LTCFrameExt.biphase_tics.offset, LTCFrameExt.sample_min.offset, LTCFrameExt.volume.offset) == (
        16, 24, 32, 36, 356, 360)


def test_bit_fields_sit_where_libltc_puts_them():
    frame = LTCFrame()
    raw = (ctypes.c_ubyte * 12).from_buffer(frame)
    frame.dfbit, frame.hours_tens, frame.sync_word = 1, 2, 0xBFFC
    assert raw[1] == 0b100 and raw[7] == 0b10 and (raw[8], raw[9]) == (0xFC, 0xBF)


def decode(pcm: np.ndarray, rate: int, block: int = 2400) -> list:
    decoder = LtcDecoder(rate)
    return [f for i in range(0, len(pcm), block) for f in decoder.write_s16(pcm[i:i + block])]


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("fps", list(RATES))
@pytest.mark.parametrize("level", [-30.0, -18.0, 0.0])
@pytest.mark.parametrize("polarity", [1, -1])
def test_every_rate_level_and_polarity_decodes_in_order(rate, fps, level, polarity):
    pcm = code(rate, fps, 1.2, start="10:00:59:20", level_dbfs=level, drop_frame=RATES[fps])
    pcm = (pcm.astype(np.int32) * polarity).clip(-32768, 32767).astype(np.int16)
    frames = decode(pcm, rate)
    assert len(frames) >= round(1.2 * fps) - 2
    keys = [f.key for f in frames]
    assert all(b > a for a, b in zip(keys, keys[1:])), "code must advance frame by frame"
    assert frames[0].timecode in ("10:00:59:20", "10:00:59:21")
    assert all(f.drop_frame == RATES[fps] for f in frames)
    if RATES[fps]:  # drop frame skips frames 00 and 01 at the minute
        assert "10:01:00:02" in [f.timecode for f in frames] and "10:01:00:00" not in [f.timecode for f in frames]
    runs = RunDetector(rate)
    runs.feed(frames, len(pcm))
    assert runs.fps == fps


def test_the_encoder_level_is_the_level_asked_for():
    frames = decode(code(48000, 25, 0.5, level_dbfs=-30.0), 48000)
    assert -34 < frames[-1].volume_dbfs < -29


@pytest.mark.parametrize("rate", [44100, 48000])
def test_rec_runs_with_a_dropout_shorter_than_the_hold_off(tmp_path, rate):
    enc = LtcEncoder(rate, 25, "01:00:00:00")
    pcm = np.concatenate([quiet(rate, 1), enc.encode(2), quiet(rate, 1), enc.encode(1), quiet(rate, 0.2),
                          enc.encode(1), quiet(rate, 1)])
    runs, _ = read_runs(write_wav(tmp_path / "a.wav", rate, pcm), hold_off_s=0.5)
    assert [(r.start_tc, r.stop_tc) for r in runs] == [("01:00:00:00", "01:00:01:23"), ("01:00:02:00", "01:00:03:23")]
    assert [round(r.start, 1) for r in runs] == [1.0, 4.0] and [round(r.stop, 1) for r in runs] == [3.0, 6.2]


def test_still_code_for_the_hold_off_stops_the_run():
    rate = 48000
    enc = LtcEncoder(rate, 25, "01:00:00:00")
    held = np.concatenate([enc.frame()] * 1)  # the frame the recorder holds when it stops
    running = enc.encode(1.0)
    still = np.concatenate([held] * 25)  # one second of the same frame again and again
    frames = decode(np.concatenate([running, still]), rate)
    runs = RunDetector(rate, hold_off_s=0.5)
    changes = runs.feed(frames, len(running) + len(still))
    assert [c.recording for c in changes] == [True, False]
    assert abs(changes[1].at_s - 1.0) < 0.1


def test_bursts_of_held_code_and_single_frames_never_roll():
    rate = 48000
    enc = LtcEncoder(rate, 25, "01:00:00:00")
    frame = enc.frame()
    pcm = np.concatenate([quiet(rate, 0.5), *[frame] * 8, quiet(rate, 1), enc.frame(), quiet(rate, 1),
                          *[frame] * 3, quiet(rate, 1)])
    runs = RunDetector(rate, hold_off_s=0.5)
    assert runs.feed(decode(pcm, rate), len(pcm)) == []


def test_a_burst_shorter_than_min_run_does_not_roll_and_a_longer_run_does():
    rate = 48000
    enc = LtcEncoder(rate, 25, "01:00:00:00")
    pcm = np.concatenate([quiet(rate, 0.5), enc.encode(0.2), quiet(rate, 1), enc.encode(1.0), quiet(rate, 1)])
    runs = RunDetector(rate, hold_off_s=0.5, min_run_s=0.3)
    changes = runs.feed(decode(pcm, rate), len(pcm))
    assert [c.recording for c in changes] == [True, False]
    assert abs(changes[0].at_s - 1.7) < 0.1  # the second run, not the 0.2 s burst


def test_noise_speech_like_tones_and_silence_never_roll():
    rate = 48000
    rng = np.random.default_rng(7)
    noise = (rng.normal(0, 3000, rate * 5)).astype(np.int16)
    t = np.arange(rate * 5) / rate
    tone = (8000 * np.sin(2 * np.pi * 1200 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.int16)
    pcm = np.concatenate([quiet(rate, 2), noise, tone, quiet(rate, 2)])
    runs = RunDetector(rate)
    assert runs.feed(decode(pcm, rate), len(pcm)) == []


def test_cli_prints_one_json_line_per_rec_run(tmp_path):
    rate = 48000
    enc = LtcEncoder(rate, 29.97, "12:34:56:00", drop_frame=True)
    ltc = np.concatenate([quiet(rate, 0.5), enc.encode(1.5), quiet(rate, 1.0), enc.encode(1.0), quiet(rate, 1.0)])
    wav = write_wav(tmp_path / "take.wav", rate, quiet(rate, len(ltc) / rate), ltc)
    out = subprocess.run([sys.executable, "-m", "setbridge", "timecode", "--json", "--channel", "2", str(wav)],
                         capture_output=True, text=True, check=True).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["start_tc"], r["stop_tc"], r["fps"]) for r in lines] == [
        ("12:34:56:00", "12:34:57:13", 29.97), ("12:34:57:15", "12:34:58:13", 29.97)]
    assert all(r["file"] == str(wav) for r in lines)
    assert [round(r["start"], 1) for r in lines] == [0.5, 3.0]
    text = subprocess.run([sys.executable, "-m", "setbridge", "timecode", "--channel", "2", str(wav)],
                          capture_output=True, text=True, check=True).stdout
    assert "29.97 fps drop frame, 2 rec runs" in text


def test_cli_names_a_missing_channel_and_a_bad_file(tmp_path):
    wav = write_wav(tmp_path / "mono.wav", 48000, quiet(48000, 0.1))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    run = subprocess.run([sys.executable, "-m", "setbridge", "timecode", "--channel", "2", str(wav), str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "channel 2 does not exist" in run.stderr and "bad.wav: cannot read as a WAV file" in run.stderr


def test_a_file_that_ends_mid_run_stops_the_run_where_the_code_last_advanced(tmp_path):
    rate = 48000
    pcm = np.concatenate([quiet(rate, 0.5), LtcEncoder(rate, 24, "02:00:00:00").encode(1.0)])
    [run], _ = read_runs(write_wav(tmp_path / "cut-short.wav", rate, pcm))
    assert run.start_tc == "02:00:00:00" and run.stop_tc.startswith("02:00:00:2") and 1.3 < run.stop <= 1.5


def test_a_jump_in_the_code_mid_run_is_one_run(tmp_path):
    rate = 48000
    before = LtcEncoder(rate, 25, "10:00:00:00").encode(1.0)
    after = LtcEncoder(rate, 25, "12:30:00:00").encode(1.0)  # re-jammed mid-take: the code jumps
    pcm = np.concatenate([quiet(rate, 0.5), before, after, quiet(rate, 1.0)])
    runs = RunDetector(rate, hold_off_s=0.5)
    changes = runs.feed(decode(pcm, rate), len(pcm))
    assert [c.recording for c in changes] == [True, False]
    assert changes[1].timecode.startswith("12:30:00:2")


def test_a_rec_run_that_resumes_where_it_stopped_rolls_on_its_first_frame():
    from setbridge.recorder.stream import LtcStream

    rate, block = 48000, 2400
    enc = LtcEncoder(rate, 25, "01:00:00:00")
    pcm = np.concatenate([quiet(rate, 0.5), enc.encode(1.0), quiet(rate, 1.0), enc.encode(1.0), quiet(rate, 1.0)])
    stream, seen = LtcStream(rate, hold_off_s=0.5), []
    for i in range(0, len(pcm), block):
        seen += [(c.recording, c.timecode, c.at_s, stream.position) for c in stream.feed(pcm[i:i + block])]
    recording, timecode, at_s, decided = seen[2]
    assert recording and timecode == "01:00:01:00" and at_s == 2.5
    assert decided - 2.5 * rate <= rate // 25 + block  # one frame, then the block it completed in
