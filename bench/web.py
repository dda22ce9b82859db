"""Web fan-out latency: from a roll to every one of N phone recording lights (event-stream clients).

Runs a private Mosquitto, an in-process hub, ``setbridge web`` as its own process, and, in a
second process, N light-page event streams (``/light/<set>/events``, read by one selector
loop over raw sockets, as N browsers would hold them open) beside one bare paho subscriber
of ``{base}/set/<set>/state``. Each round the hub rolls (``hub.submit``) and the reader process
reports when the new ``seq`` reached the last of the N pages and the bare subscriber; both
are timed on the same monotonic clock from the submit. The baseline is the bare subscriber in
the same run: the web process's cost is the difference. Also prints the web process's RSS idle
and with N = 200 streams open.

Goal: p95 < 250 ms at N = 200.
Usage: ``python bench/web.py [--counts 1 50 200] [--rounds 40]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import re
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from burst import rss_mib
from setbridge.sim.broker import PrivateBroker, free_port
from web_stage import start_hub, start_web, wait_serving, write_config

SET = "stage-b"
SEQ = re.compile(rb'"seq":(\d+)')


def readers(web_port: int, broker_port: int, base: str, count: int, conn) -> None:
    """Child process: N event streams and a bare MQTT subscriber; reports per seq the time the
    last stream and the subscriber saw it."""
    sel = selectors.DefaultSelector()
    request = (f"GET /light/{SET}/events HTTP/1.1\r\nHost: 127.0.0.1:{web_port}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()
    buffers: dict[socket.socket, bytes] = {}
    best: dict[socket.socket, int] = {}
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", web_port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(request)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        buffers[s], best[s] = b"", -1
    mqtt_seen: dict[int, float] = {}
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{uuid.uuid4().hex[:6]}")

    def on_message(c, u, msg):
        m = SEQ.search(msg.payload)
        if m:
            mqtt_seen.setdefault(int(m.group(1)), time.monotonic())

    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{base}/set/{SET}/state", 1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    subscribed.wait(10)
    reached: dict[int, int] = {}  # seq → streams that have it
    opened = 0
    conn.send(("connecting", count))
    while True:
        if conn.poll():
            if conn.recv() == "stop":
                break
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(s)
                continue
            buf = buffers[s] + data
            last = None
            for m in SEQ.finditer(buf):
                last = m
                seq = int(m.group(1))
                if seq > best[s]:
                    if best[s] == -1:
                        opened += 1
                        if opened == count:
                            conn.send(("ready", count))
                    best[s] = seq
                    n = reached[seq] = reached.get(seq, 0) + 1
                    if n == count:
                        conn.send(("seq", seq, time.monotonic(), mqtt_seen.get(seq)))
            buffers[s] = buf[last.end():] if last else buf[-200:]
    client.disconnect()
    client.loop_stop()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 50, 200])
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="setbridge-bench-web-"))
    results = []
    with PrivateBroker() as broker:
        hub = start_hub(work, SET, broker.port)
        base = hub.settings.mqtt.base_topic
        web_port = free_port()
        config = write_config(work, SET, broker.port, base, web_port)
        web = start_web(config, work / "web.log")
        try:
            wait_serving(web, web_port)
            idle_rss = rss_mib(web.pid)
            rss_at: dict[int, float] = {}
            for count in args.counts:
                parent, child = mp.Pipe()
                proc = mp.Process(target=readers, args=(web_port, broker.port, base, count, child), daemon=True)
                proc.start()
                while True:
                    msg = parent.recv()
                    if msg[0] == "ready":
                        break
                rss_at[count] = rss_mib(web.pid)
                web_ms, bare_ms = [], []
                for _ in range(args.rounds):
                    if hub.state == "rolling":
                        hub.submit("cut", "request")
                        time.sleep(0.15)
                    time.sleep(random.uniform(0.1, 0.3))  # off the heartbeat's rhythm
                    t0 = time.monotonic()
                    outcome = hub.submit("roll", "request")
                    while True:
                        if not parent.poll(10):
                            raise SystemExit(f"N={count}: the roll seq {outcome.seq} never reached every page")
                        msg = parent.recv()
                        if msg[0] == "seq" and msg[1] >= outcome.seq:
                            break
                    web_ms.append((msg[2] - t0) * 1000)
                    if msg[3] is not None:
                        bare_ms.append((msg[3] - t0) * 1000)
                hub.submit("cut", "request")
                parent.send("stop")
                proc.join(10)
                results.append((count, web_ms, bare_ms))
        finally:
            web.terminate()
            web.wait(10)
            hub.stop()
    print(f"roll -> every light page (N event streams) vs a bare MQTT subscriber, {args.rounds} rolls each, ms")
    print(f"{'N':>5} {'web p50':>9} {'web p95':>9} {'web max':>9} {'bare p50':>9} {'bare p95':>9} {'RSS MiB':>8}")
    for count, web_ms, bare_ms in results:
        print(f"{count:>5} {statistics.median(web_ms):>9.1f} {pct(web_ms, 95):>9.1f} {max(web_ms):>9.1f} "
              f"{statistics.median(bare_ms):>9.1f} {pct(bare_ms, 95):>9.1f} {rss_at[count]:>8.1f}")
    print(f"web process RSS: {idle_rss:.1f} MiB with no page open")
    if 200 in dict((c, w) for c, w, _ in results):
        p95 = pct(dict((c, w) for c, w, _ in results)[200], 95)
        print(f"goal p95 < 250 ms at N = 200: {'met' if p95 < 250 else 'NOT met'} ({p95:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
