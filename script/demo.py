"""The demo behind ``script/demo``: broker, hub and watcher as real processes, then a scripted shoot."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from setbridge.devbroker import PrivateBroker

SETBRIDGE = [sys.executable, "-m", "setbridge"]


def stream(proc: subprocess.Popen, prefix: str) -> None:
    for line in proc.stdout:
        print(f"{prefix}{line.rstrip()}", flush=True)


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="setbridge-demo-"))
    children: list[subprocess.Popen] = []
    with PrivateBroker() as broker:
        config = work / "setbridge.toml"
        config.write_text(
            f'[hub]\nid = "demo-hub"\nset = "stage-a"\nstate_dir = "{work / "state"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        )
        run = dict(stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def start(args: list[str], prefix: str) -> subprocess.Popen:
            proc = subprocess.Popen(SETBRIDGE + args + ["--config", str(config)], **run)
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
            start(["hub"], "   hub   | ")
            time.sleep(1.5)
            say("three recording lights, each the real firmware under the MicroPython Unix port")
            start(["lights", "simulate", "--count", "3"], "   light | ")
            time.sleep(3.0)
            say("the 1st AD locks it up, rolls, and cuts (requests, as a button or integrator would send)")
            for action in ("standby", "roll", "cut"):
                send(action)
                time.sleep(1.0)
            say("done; shutting down")
        finally:
            for proc in reversed(children):
                proc.terminate()
            for proc in children:
                proc.wait(timeout=10)
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
