"""What a light shows, and when: the board-independent state rules.

``Follower`` is fed the messages and link events of one light and answers
``showing(now)``. It never touches hardware or the network, so the same rules
run on a board, under the Unix port and under CPython unit tests.

Rules:
- a set state (or heartbeat) is applied only if newer: another ``epoch`` wins,
  within an epoch a higher ``seq`` wins; an equal one confirms what is shown;
- the link is trusted while the broker is connected, the hub is not offline and
  a heartbeat or state arrived within ``timeout_ms``; otherwise "link-lost";
- ``lost()`` names the missing link: ``wifi``, ``broker`` or ``hub`` (the blink code);
- identify/test/flash overlays run only on a trusted link and never while the set
  is rolling; a roll or a lost link ends them at once.
"""

from clock import diff

LINK_LOST = "link-lost"
TEST_CYCLE = ("idle", "standby", "rolling", LINK_LOST)


class Follower:
    def __init__(self, timeout_ms=2500, log=None):
        self.timeout_ms = timeout_ms
        self.log = log or (lambda msg: None)
        self.state = None  # idle / standby / rolling, once known
        self.epoch = None
        self.seq = None
        self.connected = False
        self.hub_online = None  # None until the hub's status is known
        self.last_seen = None  # ticks of the last heartbeat or state
        self.overlay = None  # (kind, started, duration_ms, options)
        self.down = "wifi"  # which link is missing while not connected: wifi or broker

    # -- inputs -----------------------------------------------------------------------
    def link_up(self, now):
        """The broker connection is up (subscriptions sent)."""
        self.connected = True
        self.last_seen = now  # the retained state and a heartbeat are due within the timeout

    def link_down(self, now, link):
        """The broker connection is gone; ``link`` is ``wifi`` or ``broker``, whichever failed."""
        self.connected = False
        self.down = link

    def hub_status(self, now, online):
        self.hub_online = online

    def set_state(self, now, msg, beat=False):
        """A set state or heartbeat ``{"state","epoch","seq"}``; True when applied."""
        epoch, seq = msg["epoch"], msg["seq"]
        if self.epoch is None or epoch != self.epoch or seq > self.seq:
            if self.epoch is not None and epoch != self.epoch:
                self.log("new hub epoch %d (was %d)" % (epoch, self.epoch))
            self.state, self.epoch, self.seq = msg["state"], epoch, seq
            self.last_seen = now
            if self.state == "rolling":
                self.overlay = None
            return True
        if seq == self.seq:
            self.last_seen = now  # the same state again: the hub is alive
            return False
        self.log("ignored stale %s epoch %d seq %d (have seq %d)"
                 % ("heartbeat" if beat else "state", epoch, seq, self.seq))
        return False

    def command(self, now, cmd):
        """An identify/test/flash command; False (and logged) when refused."""
        if not self.trusted(now):
            self.log("ignored %s: the link is lost" % cmd["action"])
            return False
        if self.state == "rolling":
            self.log("ignored %s: the set is rolling" % cmd["action"])
            return False
        self.overlay = (cmd["action"], now, cmd["duration_ms"], cmd)
        return True

    # -- outputs ------------------------------------------------------------------------
    def trusted(self, now):
        return self.lost(now) is None

    def lost(self, now):
        """None while the link is trusted, else the missing link: wifi, broker or hub."""
        if not self.connected:
            return self.down
        if self.hub_online is False or self.state is None:
            return "hub"
        if self.last_seen is None or diff(now, self.last_seen) > self.timeout_ms:
            return "hub"
        return None

    def showing(self, now):
        """``(showing, overlay)``: what to show and the running overlay, if any."""
        if not self.trusted(now):
            self.overlay = None
            return LINK_LOST, None
        if self.overlay is not None:
            kind, started, duration, _opts = self.overlay
            if diff(now, started) < duration:
                return kind, self.overlay
            self.overlay = None
        return self.state, None

    def next_deadline(self, now):
        """Milliseconds until the heartbeat deadline (for the main loop's sleep)."""
        if self.last_seen is None or not self.connected:
            return 1000
        return max(0, self.timeout_ms - diff(now, self.last_seen) + 1)
