"""What the Prometheus metrics cost: the hub's CPU and RSS with ``[metrics]`` on and off, and how
long a scrape of ``/metrics`` takes at a large stage.

1. burst: a real ``setbridge hub`` process answers ``--requests`` requests from 5 clients (as
   ``bench/burst.py`` sends them), with metrics off, on, and on with ``/metrics`` scraped every
   second throughout (15 times Prometheus' default rate), in turn (``--rounds`` each, so drift
   hits all three). Figure: the hub's CPU milliseconds per answered request (median of the
   rounds). Goal: on ≤ 3 % above off.
2. lights: the hub with ``--lights`` simulated lights (the real firmware under the MicroPython
   Unix port) and a request every ``--pace`` seconds for ``--seconds``, in the same three modes:
   CPU %, CPU per request (heartbeats included) and RSS.
3. scrape: ``setbridge web`` fed by a publisher that plays ``--board-sets`` hubs and sets (state,
   heartbeats) and ``--board-lights`` lights (alive once a second) and 20 offload cards; the time
   of a GET of ``/metrics`` (median, p95 of 100) beside a GET of a static file from the same
   server (the baseline: the HTTP round trip itself), and the number of series. The hub's own
   ``/metrics`` too. Goal: ≤ 20 ms.

Usage: ``python bench/metrics.py [--requests 10000] [--rounds 3] [--lights 50] [--seconds 30]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from burst import Collector, Heartbeats, cpu_seconds, phase, rss_mib, wait_online
from report import print_table
from setbridge.config import load_settings
from setbridge.sim.broker import PrivateBroker, free_port
from setbridge.sim.lights import LightsSim
from setbridge.topics import Topics


def start_hub(port: int, workdir: Path, base: str, set_id: str, metrics_port: int | None) -> tuple[subprocess.Popen, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    lines = ["[hub]", 'id = "bench"', f'set = "{set_id}"', f'state_dir = "{workdir / "state"}"', "heartbeat_s = 1.0",
             "[mqtt]", 'host = "127.0.0.1"', f"port = {port}", f'base_topic = "{base}"', "reconnect_max_s = 1"]
    if metrics_port is not None:
        lines += ["[metrics]", "enabled = true", 'host = "127.0.0.1"', f"port = {metrics_port}"]
    config = workdir / "setbridge.toml"
    config.write_text("\n".join(lines) + "\n")
    log = workdir / "hub.log"
    proc = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config", str(config)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return proc, log


class Scraper:
    """GETs ``url`` every ``every_s`` in a thread; records each scrape's time."""

    def __init__(self, url: str | None, every_s: float = 1.0):
        self.url, self.every_s, self.times = url, every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Scraper":
        if self.url:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.url:
            self._thread.join(5)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(self.every_s):
                t0 = time.perf_counter()
                try:
                    client.get(self.url).raise_for_status()
                except httpx.HTTPError:
                    continue
                self.times.append(time.perf_counter() - t0)


def wait_metrics(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


MODES = {"off": (False, None), "on": (True, None), "on+scraped": (True, 1.0)}
"""Metrics off; on but not scraped; on and scraped every second."""


@dataclass
class HubRound:
    """The hub process of one round, on its own base topic, and the scraper its metrics mode asks for."""

    set_id: str
    topics: Topics
    proc: subprocess.Popen
    log: Path
    scraper: Scraper


@contextmanager
def hub_round(broker: PrivateBroker, tmp: Path, mode: str) -> Iterator[HubRound]:
    """A hub started in metrics mode ``mode`` (see MODES), its ``/metrics`` answering; stopped after."""
    set_id, base = "bench", f"bench{uuid.uuid4().hex[:6]}"
    metrics, every_s = MODES[mode]
    mport = free_port() if metrics else None
    hub, log = start_hub(broker.port, tmp / uuid.uuid4().hex[:6], base, set_id, mport)
    url = f"http://127.0.0.1:{mport}/metrics" if mport else None
    try:
        if url:
            wait_metrics(url)
        yield HubRound(set_id, Topics(base), hub, log, Scraper(url if every_s else None, every_s or 1.0))
    finally:
        hub.terminate()
        hub.wait(15)


def burst_round(broker: PrivateBroker, tmp: Path, mode: str, n: int) -> dict:
    with hub_round(broker, tmp, mode) as hub:
        beats = Heartbeats(broker.port, hub.topics.set_heartbeat(hub.set_id))
        with Collector(broker.port, hub.topics, hub.set_id) as seen:
            wait_online(seen)
            with hub.scraper as scraper:
                row = phase("5 clients", broker.port, hub.topics, hub.set_id, seen, hub.proc.pid, hub.log, n, 5, 1000,
                            beats)
        beats.close()
    answered = row["answered/s"]
    row.update(metrics=mode, scrapes=len(scraper.times),
               cpu_ms_per_req=row["cpu %"] / 100 / answered * 1000 if answered else float("nan"))
    return row


def lights_round(broker: PrivateBroker, tmp: Path, mode: str, lights: int, seconds: float, pace: float) -> dict:
    with hub_round(broker, tmp, mode) as hub:
        settings = load_settings(None, hub={"set": hub.set_id}, mqtt={"host": "127.0.0.1", "port": broker.port,
                                                                  "base_topic": hub.topics.base})
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        pid = hub.proc.pid
        try:
            with LightsSim(settings, lights, hub.set_id, prefix="door"):
                time.sleep(5)  # the lights connect and settle
                with hub.scraper as scraper:
                    cpu0, t0, i = cpu_seconds(pid), time.monotonic(), 0
                    while time.monotonic() - t0 < seconds:
                        action = ("roll", "cut")[i % 2]
                        client.publish(hub.topics.set_request(hub.set_id), json.dumps({"v": 1, "action": action}),
                                       qos=1)
                        i += 1
                        time.sleep(pace)
                    elapsed = time.monotonic() - t0
                    cpu = (cpu_seconds(pid) - cpu0) / elapsed * 100
            return {"metrics": mode, "lights": lights, "requests": i, "cpu %": cpu,
                    "cpu_ms_per_req": cpu / 100 * elapsed / i * 1000 if i else float("nan"),
                    "rss MiB": rss_mib(pid), "peak MiB": rss_mib(pid, "VmHWM"), "scrapes": len(scraper.times)}
        finally:
            client.disconnect()
            client.loop_stop()


def feed_stage(port: int, base: str, sets: int, lights: int, stop: threading.Event) -> None:
    """Play ``sets`` hubs and sets, ``lights`` lights (alive once a second) and 20 cards."""
    topics = Topics(base)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"feeder-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    set_ids = [f"stage-{i}" for i in range(sets)]
    for i, s in enumerate(set_ids):
        client.publish(topics.hub_status(f"hub-{i}"), json.dumps({"v": 1, "state": "online", "hub": f"hub-{i}",
                                                                  "set": s, "version": "bench", "audio": "ok"}),
                       qos=1, retain=True)
        client.publish(topics.set_state(s), json.dumps({"v": 1, "set": s, "state": "rolling", "epoch": 1, "seq": 1,
                                                        "take": 1, "cause": "bench", "ts": time.time()}),
                       qos=1, retain=True)
    light_ids = [(f"door-{i}", set_ids[i % sets]) for i in range(lights)]
    for light, s in light_ids:
        client.publish(f"{base}/light/{light}/status", json.dumps({"v": 1, "state": "online", "fw": "bench", "set": s}),
                       qos=1, retain=True)
    for i in range(20):
        client.publish(f"{base}/offload/card/A{i:03d}", json.dumps({
            "v": 1, "roll": f"A{i:03d}", "status": "verified" if i % 4 else "failed", "safe_to_wipe": i % 4 == 1,
            "ts": time.time()}), qos=1, retain=True)
    beats = [(topics.set_heartbeat(s), lambda: json.dumps({"v": 1, "epoch": 1, "seq": 1, "state": "rolling",
                                                           "ts": time.time()})) for s in set_ids]
    alive = json.dumps({"v": 1, "showing": "rolling", "every_s": 1.0})
    messages = beats + [(f"{base}/light/{light}/alive", lambda: alive) for light, _ in light_ids]
    gap = 1.0 / len(messages)  # spread over each second, as lights and hubs that start apart send them
    while not stop.is_set():
        second = time.monotonic()
        for i, (topic, payload) in enumerate(messages):
            client.publish(topic, payload())
            stop.wait(max(0.0, second + (i + 1) * gap - time.monotonic()))
    client.disconnect()
    client.loop_stop()


def timed_gets(url: str, n: int = 100) -> list[float]:
    times = []
    with httpx.Client(timeout=5) as client:
        client.get(url)
        for _ in range(n):
            t0 = time.perf_counter()
            client.get(url).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def in_process(sets: int, lights: int) -> dict:
    """Collecting and rendering the board's metrics alone, on a stage fed the same messages."""
    from prometheus_client import generate_latest

    from setbridge.web.metrics import stage_registry
    from setbridge.web.stage import Stage

    topics = Topics("b")
    stage = Stage(topics)
    stage.broker(True)
    for i in range(sets):
        s = f"stage-{i}"
        stage.handle(topics.hub_status(f"hub-{i}"), json.dumps({"v": 1, "state": "online", "hub": f"hub-{i}", "set": s,
                                                                "version": "bench"}).encode())
        stage.handle(topics.set_state(s), json.dumps({"v": 1, "set": s, "state": "rolling", "epoch": 1, "seq": 1,
                                                      "take": 1, "cause": "bench"}).encode())
        stage.handle(topics.set_heartbeat(s), json.dumps({"v": 1, "epoch": 1, "seq": 1, "state": "rolling"}).encode())
    for i in range(lights):
        stage.handle(topics.light_status(f"door-{i}"), json.dumps({"v": 1, "state": "online",
                                                                   "set": f"stage-{i % sets}"}).encode())
        stage.handle(topics.light_alive(f"door-{i}"), json.dumps({"v": 1, "showing": "rolling", "every_s": 1.0}).encode())
    registry = stage_registry(stage)
    times = []
    for _ in range(100):
        t0 = time.perf_counter()
        text = generate_latest(registry)
        times.append((time.perf_counter() - t0) * 1000)
    return {"what": "board metrics rendered in process", "median ms": statistics.median(times),
            "p95 ms": statistics.quantiles(times, n=20)[18], "series": series(text.decode()), "bytes": len(text)}


def series(text: str) -> int:
    return sum(len(f.samples) for f in text_string_to_metric_families(text))


def scrape_bench(broker: PrivateBroker, tmp: Path, sets: int, lights: int) -> list[dict]:
    base = f"bench{uuid.uuid4().hex[:6]}"
    stop = threading.Event()
    feeder = threading.Thread(target=feed_stage, args=(broker.port, base, sets, lights, stop), daemon=True)
    feeder.start()
    config = tmp / "web.toml"
    config.write_text("\n".join([
        "[hub]", f'state_dir = "{tmp / "webstate"}"',
        "[mqtt]", 'host = "127.0.0.1"', f"port = {broker.port}", f'base_topic = "{base}"',
        "[web]", f'client_id = "web-{uuid.uuid4().hex[:6]}"']) + "\n")
    wport = free_port()
    web = subprocess.Popen([sys.executable, "-m", "setbridge", "web", "--config", str(config), "--host", "127.0.0.1",
                            "--port", str(wport)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    set_id, hbase = "bench", f"bench{uuid.uuid4().hex[:6]}"
    mport = free_port()
    hub, _ = start_hub(broker.port, tmp / "scrapehub", hbase, set_id, mport)
    url = f"http://127.0.0.1:{wport}"
    try:
        wait_metrics(url + "/metrics")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = httpx.get(url + "/metrics").text
            if text.count('setbridge_board_light_alive{') >= lights and ' 0.0\n' not in "".join(
                    line + "\n" for line in text.splitlines() if line.startswith("setbridge_board_light_alive{")):
                break
            time.sleep(0.5)
        else:
            raise SystemExit("the web process did not see every light alive")
        wait_metrics(f"http://127.0.0.1:{mport}/metrics")
        rows = [in_process(sets, lights)]
        for name, target in (("web /metrics", url + "/metrics"), ("web static file (baseline)", url + "/static/web.css"),
                             ("hub /metrics", f"http://127.0.0.1:{mport}/metrics")):
            times = timed_gets(target)
            text = httpx.get(target).text
            rows.append({"what": name, "median ms": statistics.median(times),
                         "p95 ms": statistics.quantiles(times, n=20)[18],
                         "series": series(text) if "metrics" in target else "-", "bytes": len(text.encode())})
        return rows
    finally:
        stop.set()
        web.terminate()
        web.wait(15)
        hub.terminate()
        hub.wait(15)
        feeder.join(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lights", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--pace", type=float, default=0.5, help="seconds between requests in the lights phase")
    ap.add_argument("--board-sets", type=int, default=10)
    ap.add_argument("--board-lights", type=int, default=200)
    ap.add_argument("--skip", nargs="*", default=[], choices=["burst", "lights", "scrape"])
    args = ap.parse_args()
    with PrivateBroker(extra_config="max_inflight_messages 100") as broker, \
            tempfile.TemporaryDirectory(prefix="setbridge-metrics-") as tmpdir:
        tmp = Path(tmpdir)
        if "burst" not in args.skip:
            rows = [burst_round(broker, tmp, mode, args.requests) for _ in range(args.rounds) for mode in MODES]
            print(f"1. burst: {args.requests:,} requests from 5 clients per round; metrics off, on, and on with "
                  "/metrics scraped every second")
            print_table(rows, ["metrics", "answered/s", "unanswered", "twice", "cpu %", "cpu_ms_per_req", "rss MiB",
                         "peak MiB", "scrapes"],
                  {"answered/s": "{:,.0f}", "cpu %": "{:.0f}", "cpu_ms_per_req": "{:.4f}", "rss MiB": "{:.1f}",
                   "peak MiB": "{:.1f}"})
            off = statistics.median(r["cpu_ms_per_req"] for r in rows if r["metrics"] == "off")
            for mode in ("on", "on+scraped"):
                on = statistics.median(r["cpu_ms_per_req"] for r in rows if r["metrics"] == mode)
                print(f"   median CPU per answered request: off {off:.4f} ms, {mode} {on:.4f} ms: {on / off - 1:+.1%} "
                      f"(goal <= +3 %: {'met' if on <= off * 1.03 else 'NOT met'})")
            print()
        if "lights" not in args.skip:
            rows = [lights_round(broker, tmp, mode, args.lights, args.seconds, args.pace) for mode in MODES]
            print(f"2. {args.lights} lights, a request every {args.pace:g} s for {args.seconds:g} s; metrics off, on, "
                  "and on with /metrics scraped every second")
            print_table(rows, ["metrics", "lights", "requests", "cpu %", "cpu_ms_per_req", "rss MiB", "peak MiB", "scrapes"],
                  {"cpu %": "{:.2f}", "cpu_ms_per_req": "{:.3f}", "rss MiB": "{:.1f}", "peak MiB": "{:.1f}"})
            print()
        if "scrape" not in args.skip:
            rows = scrape_bench(broker, tmp, args.board_sets, args.board_lights)
            print(f"3. scrape: the web process sees {args.board_sets} sets and {args.board_lights} lights "
                  "(alive every second) and 20 cards; 100 GETs each")
            print_table(rows, ["what", "median ms", "p95 ms", "series", "bytes"], {"median ms": "{:.2f}", "p95 ms": "{:.2f}"})
            worst = max(r["p95 ms"] for r in rows if r["what"].endswith("/metrics"))
            print(f"   goal: a scrape <= 20 ms: {'met' if worst <= 20 else 'NOT met'} (worst p95 {worst:.2f} ms)")


if __name__ == "__main__":
    main()
