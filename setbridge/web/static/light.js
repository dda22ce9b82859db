// A recording light in the browser: the firmware's rules, computed here as well.
// A state applies only if newer (another epoch wins, else a higher seq); only heartbeats prove
// the hub alive; the page shows LINK LOST when the stream, the broker or the hub is gone or the
// last heartbeat is older than the timeout. Bus data is only ever set with textContent.
"use strict";
(() => {
  const body = document.body;
  const setId = body.dataset.set;
  const timeoutMs = Number(body.dataset.timeoutMs) || 2500;
  const word = document.getElementById("word");
  const detail = document.getElementById("detail");
  const WORDS = { rolling: "ROLLING", standby: "STANDBY", idle: "IDLE", "link-lost": "LINK LOST" };
  let state = null, epoch = null, seq = null, take = null, lastBeat = null;
  let open = false, broker = false, hubOnline = null;

  function confirm(v) {
    if (v.beat_age_s === null || v.beat_age_s === undefined) return;
    const at = performance.now() - v.beat_age_s * 1000;
    if (lastBeat === null || at > lastBeat) lastBeat = at;
  }

  function apply(v) {
    broker = v.broker === true;
    hubOnline = v.hub_online;
    if (v.state === null || v.epoch === null || v.seq === null) return;
    if (epoch === null || v.epoch !== epoch || v.seq > seq) {
      state = v.state; epoch = v.epoch; seq = v.seq; take = v.take;
      confirm(v);
    } else if (v.seq === seq) {
      confirm(v);
    } // an older seq within the epoch is stale: ignored
  }

  function lost() {
    if (!open) return "no connection to the board server";
    if (!broker) return "broker unreachable";
    if (hubOnline === false) return "hub offline";
    if (state === null) return "no state from the hub";
    if (lastBeat === null || performance.now() - lastBeat > timeoutMs) return "no heartbeat from the hub";
    return null;
  }

  function render() {
    const why = lost();
    const showing = why ? "link-lost" : state;
    if (body.dataset.showing !== showing) {
      body.dataset.showing = showing;
      body.dataset.since = String(Date.now());  // when this began to show, in ms since the epoch
    }
    const w = WORDS[showing] || showing;
    if (word.textContent !== w) word.textContent = w;
    const d = why ? `${setId} · ${why}` : (take === null || take === undefined ? setId : `${setId} · take ${take}`);
    if (detail.textContent !== d) detail.textContent = d;
  }

  let source = null;
  function connect() {
    source = new EventSource(`/light/${encodeURIComponent(setId)}/events`);
    source.onopen = () => { open = true; render(); };
    source.onerror = () => {
      open = false; render();
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000); // refused: try again
    };
    source.addEventListener("view", (e) => {
      open = true;
      try { apply(JSON.parse(e.data)); } catch (err) { /* not JSON: ignored */ }
      render();
    });
  }
  connect();
  setInterval(render, 100);

  // Keep the screen awake where the browser allows it (needs HTTPS or localhost), and go full
  // screen on a tap.
  let lock = null;
  async function stayAwake() {
    try {
      if ("wakeLock" in navigator && document.visibilityState === "visible" && lock === null) {
        lock = await navigator.wakeLock.request("screen");
        lock.addEventListener("release", () => { lock = null; });
      }
    } catch (err) { lock = null; }
  }
  document.addEventListener("visibilitychange", stayAwake);
  document.getElementById("wake").addEventListener("click", () => {
    stayAwake();
    if (document.documentElement.requestFullscreen) document.documentElement.requestFullscreen().catch(() => {});
  });
  stayAwake();
})();
