"""The light's main loop: Wi-Fi, MQTT, the state rules and the output, wired together.

Board-independent: everything board-specific comes from the ``board`` object
(``wifi_up()``, ``wifi_start()``, ``pin()``/``pwm()``/``neopixel()``, ``feed()``,
``log()``, ``showing_changed()``).
"""

import random

import clock
import outputs
import patterns
import payloads
from mqtt import CLOSED, MQTTClient
from rules import Follower
from version import VERSION as FW_VERSION

BACKOFF_START_MS = 500
MAX_SLEEP_MS = 100


def tls_context(m):
    """(context, server name) pinning the CA of ``mqtt.ca``, or None for plain MQTT."""
    if not m.get("tls"):
        return None
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cadata=m["_ca"])
    except ValueError as exc:
        raise ValueError("config.json: mqtt.ca %s is not a CA certificate (%s)" % (m["ca"], exc))
    return context, m.get("server_name") or m["host"]


class App:
    def __init__(self, cfg, board):
        self.cfg = cfg
        self.board = board
        self.log = board.log
        self.light = cfg["id"]
        base = cfg["mqtt"]["base_topic"]
        ids = {"set": cfg["set"], "hub": cfg["hub"], "light": self.light}
        self.t_state = payloads.topic(base, "set_state", ids)
        self.t_beat = payloads.topic(base, "set_heartbeat", ids)
        self.t_hub = payloads.topic(base, "hub_status", ids)
        self.t_cmd = payloads.topic(base, "light_cmd", ids)
        self.t_status = payloads.topic(base, "light_status", ids)
        self.t_show = payloads.topic(base, "light_state", ids)
        self.t_alive = payloads.topic(base, "light_alive", ids)
        self.alive_ms = int(cfg["alive_s"] * 1000)
        self.next_alive = clock.ticks()
        m = cfg["mqtt"]
        self.mqtt = MQTTClient(
            "setbridge-light-" + self.light, m["host"], m["port"], m.get("user"), m.get("password"),
            keepalive=m["keepalive_s"], log=self.log, tls=tls_context(m),
            will=(self.t_status, payloads.light_status("offline", FW_VERSION, cfg["set"]),
                  payloads.retained("light_status"), payloads.qos("light_status")),
        )
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_disconnect = self._on_disconnect
        self.mqtt.on_message = self._on_message
        self.rules = Follower(int(cfg["heartbeat_timeout_s"] * 1000), log=self.log)
        patterns.COLORS.update({k: tuple(v) for k, v in cfg["colors"].items()})
        self.output = outputs.build(cfg, board)
        self.shown = None
        self.shown_lost = None
        self.shown_since = 0
        self.published = None
        self.backoff = BACKOFF_START_MS
        self.next_try = clock.ticks()
        self.wifi = False

    # -- MQTT callbacks ------------------------------------------------------------------
    def _on_connect(self):
        now = clock.ticks()
        self.log("connected to %s:%d" % (self.mqtt.host, self.mqtt.port))
        self.backoff = BACKOFF_START_MS
        q = payloads.qos
        self.mqtt.subscribe([(self.t_hub, q("hub_status")), (self.t_state, q("set_state")),
                             (self.t_beat, q("set_heartbeat")), (self.t_cmd, q("light_cmd"))])
        self.mqtt.publish(self.t_status, payloads.light_status("online", FW_VERSION, self.cfg["set"]),
                          payloads.retained("light_status"), q("light_status"))
        self.published = None
        self.next_alive = now
        self.rules.link_up(now)

    def _on_disconnect(self, reason):
        self.rules.link_down(clock.ticks(), "broker")
        self._schedule_retry()

    def _on_message(self, topic, payload, retain):
        now = clock.ticks()
        try:
            if topic == self.t_beat:
                self.rules.set_state(now, payloads.parse_heartbeat(payload), beat=True)
            elif topic == self.t_state:
                self.rules.set_state(now, payloads.parse_set_state(payload))
            elif topic == self.t_hub:
                self.rules.hub_status(now, payloads.parse_hub_status(payload) == "online")
            elif topic == self.t_cmd:
                if retain:
                    raise ValueError("commands must not be retained")
                self.rules.command(now, payloads.parse_cmd(payload))
            else:
                raise ValueError("unexpected topic")
        except ValueError as exc:
            self.log("ignored message on %s: %s" % (topic, exc))
        except Exception as exc:  # a bug must not take the light down: log it and carry on
            self.log("ignored message on %s: unexpected %r" % (topic, exc))
        self.update(now)

    # -- loop --------------------------------------------------------------------------
    def _schedule_retry(self):
        jitter = self.backoff // 4
        self.next_try = clock.ticks() + self.backoff - jitter + random.getrandbits(12) % (2 * jitter + 1)
        self.backoff = min(self.backoff * 2, int(self.cfg["reconnect_max_s"] * 1000))

    def network(self, now):
        wifi = self.board.wifi_up()
        if wifi != self.wifi:
            self.wifi = wifi
            self.log("wifi up" if wifi else "wifi down")
            if wifi:
                self.rules.link_down(now, "broker")  # up to the broker next
            else:
                self.mqtt.close()
                self.rules.link_down(now, "wifi")
                self.board.wifi_start()
        if not wifi:
            return
        if self.mqtt.state == CLOSED and clock.diff(now, self.next_try) >= 0:
            if self.rules.connected:
                self.rules.link_down(now, "broker")
            try:
                self.mqtt.start(now)
            except OSError as exc:
                self.log("mqtt: cannot reach %s: %r" % (self.mqtt.host, exc))
            self._schedule_retry()

    def update(self, now):
        """Render the current frame; publish and report a change of what is shown."""
        showing, overlay = self.rules.showing(now)
        lost = self.rules.lost(now)
        changed = (showing, lost) != (self.shown, self.shown_lost)
        if changed:
            if showing != self.shown:
                self.shown_since = now
            self.shown = showing
            self.shown_lost = lost
        level, key, nxt = patterns.frame(showing, clock.diff(now, self.shown_since), overlay, lost)
        rgb = key if isinstance(key, tuple) else patterns.COLORS.get(key, (0, 0, 0))
        self.output.render(level, rgb)
        if changed:  # reported once the output shows it
            if lost:
                self.log("link lost: no %s" % ("Wi-Fi" if lost == "wifi" else lost))
            self.board.showing_changed(showing, self.rules.epoch, self.rules.seq, lost)
        if showing != "flash" and self.mqtt.connected:
            state = (showing, self.rules.epoch, self.rules.seq)
            if state != self.published:
                self.published = state
                self.mqtt.publish(self.t_show, payloads.light_state(*state), payloads.retained("light_state"),
                                  payloads.qos("light_state"))
        return nxt

    def alive(self, now):
        """Say "alive" every ``alive_s`` (QoS 0, not retained), so that anyone can tell a frozen
        light from a working one without relying on the broker's keepalive."""
        if not self.mqtt.connected or clock.diff(now, self.next_alive) < 0:
            return
        self.next_alive = now + self.alive_ms
        self.mqtt.publish(self.t_alive, payloads.light_alive(self.shown, self.rules.epoch, self.rules.seq,
                                                             self.alive_ms / 1000),
                          payloads.retained("light_alive"), payloads.qos("light_alive"))

    def step(self):
        now = clock.ticks()
        self.board.feed()
        self.network(now)
        self.mqtt.poll(now)
        nxt = self.update(now)
        self.alive(now)
        return min(nxt, self.rules.next_deadline(now), MAX_SLEEP_MS)

    def run(self):
        self.log("light %s (fw %s) follows set %s" % (self.light, FW_VERSION, self.cfg["set"]))
        self.board.wifi_start()
        while True:
            try:
                self.mqtt.wait(self.step())
            except Exception as exc:  # keep going; the watchdog resets a board that truly hangs
                self.log("main loop error: %r" % (exc,))
                self.mqtt.close()
                self.rules.link_down(clock.ticks(), "broker")
                self._schedule_retry()
                self.mqtt.wait(100)
