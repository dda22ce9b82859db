// The board, live: every "board" event is a snapshot of the stage; the sets are rebuilt from it
// with DOM calls and textContent only (bus data never becomes markup). Ages tick locally.
"use strict";
(() => {
  const body = document.body;
  const csrf = body.dataset.csrf;
  const control = body.dataset.control === "yes";
  const actions = (body.dataset.actions || "").split(" ").filter(Boolean);
  const sets = document.getElementById("sets");
  const brokerAlert = document.getElementById("broker-alert");
  const streamAlert = document.getElementById("stream-alert");
  let snapshot = null, offset = 0;
  const since = new Map();  // set → [state, when this page first showed it (ms since the epoch)]

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  const now = () => Date.now() / 1000 + offset;  // in the server's clock
  const clock = (ts) => ts ? new Date((ts - offset) * 1000).toLocaleTimeString([], { hour12: false }) : "—";
  const ago = (ts) => ts ? `${Math.max(0, Math.round(now() - ts))} s ago` : "—";

  const aliveWord = (a) => a === null || a === undefined ? "?" : (a ? "yes" : "NO");
  const aliveAttr = (a) => a === null || a === undefined ? "unknown" : (a ? "yes" : "no");
  // What the light says it shows, beside what its set told it to show: a disagreement is flagged.
  const toldWord = (l) => l.told ? (l.mismatch ? `${l.told} ≠` : l.told) : "—";
  function lightsTable(lights, emptyText) {
    const tbody = el("tbody");
    for (const l of lights) {
      tbody.append(el("tr", { "data-light": l.id, "data-alive": aliveAttr(l.alive), "data-mismatch": l.mismatch ? "yes" : "no" },
        el("td", {}, l.id), el("td", {}, l.online === null ? "?" : (l.online ? "online" : "OFFLINE")),
        el("td", { class: "alive" }, aliveWord(l.alive)), el("td", { class: "showing" }, l.showing || "?"),
        el("td", { class: "told" }, toldWord(l)), el("td", { "data-ago": l.seen || "" })));
    }
    if (!lights.length) tbody.append(el("tr", {}, el("td", { colSpan: 6, class: "none" }, emptyText)));
    return el("table", { class: "lights" }, el("thead", {}, el("tr", {}, ...["light", "status", "alive", "says it shows", "told to show", "last seen"]
      .map((h) => el("th", {}, h)))), tbody);
  }

  let lightNews = {};  // light → {alive, showing}, from the once-a-second beats
  function tickLights() {
    for (const row of document.querySelectorAll("tr[data-light]")) {
      const news = lightNews[row.dataset.light];
      if (!news) continue;
      row.dataset.alive = aliveAttr(news.alive);
      row.querySelector(".alive").textContent = aliveWord(news.alive);
      row.querySelector(".showing").textContent = news.showing || "?";
      row.dataset.mismatch = news.mismatch ? "yes" : "no";
      row.querySelector(".told").textContent = toldWord(news);
    }
  }

  // Each set's heartbeat age as last heard ("beats" every second, or a snapshot), and when.
  const beats = new Map();
  function beatAge(setId) {
    const b = beats.get(setId);
    return !b || b.age === null ? null : b.age + (performance.now() - b.at) / 1000;
  }
  function lostReason(setId) {
    const b = beats.get(setId), age = beatAge(setId);
    if (!streamOpen) return "no connection to the board server";
    if (b && b.lost) return b.lost;
    return age === null || age > snapshot.link_timeout_s ? "no heartbeat" : null;
  }

  function setCard(s) {
    const lost = lostReason(s.set);
    const shown = s.state || "unknown";
    if (!since.has(s.set) || since.get(s.set)[0] !== shown) since.set(s.set, [shown, Date.now()]);
    const card = el("section", { class: "set", "data-set": s.set, "data-state": shown,
      "data-link": lost ? "lost" : "ok", "data-since": String(since.get(s.set)[1]) }, el("h2", {}, s.set), el("p", { class: "state" }, (s.state || "unknown").toUpperCase()));
    card.append(Object.assign(el("p", { class: "lost" }, lost ? `LINK LOST (${lost})` : ""), { hidden: !lost }));
    const facts = el("dl", { class: "facts" });
    const fact = (k, v) => facts.append(el("dt", {}, k), el("dd", {}, v));
    fact("Take", s.take === null ? "—" : s.take);
    facts.append(el("dt", {}, "Last change"), el("dd", { "data-ago": s.changed_ts || "", "data-suffix": s.cause ? ` (${s.cause})` : "" }));
    if (!s.hubs.length) fact("Hub", "none announced");
    for (const h of s.hubs) {
      fact(`Hub ${h.id}`, `${h.state}, audio ${h.audio}${h.voice === null || h.voice === undefined ? "" : `, voice ${h.voice ? "on" : "off"}`}${h.timecode ? `, timecode ${h.timecode}${h.recorder ? ` (recorder ${h.recorder})` : ""}` : ""}`);
    }
    facts.append(el("dt", {}, "Heartbeat"), el("dd", { "data-beat": s.set }));
    card.append(facts);
    if (control) {
      const row = el("div", { class: "controls" });
      for (const a of actions) {
        row.append(el("form", { method: "post", action: `/set/${encodeURIComponent(s.set)}/${a}` },
          el("input", { type: "hidden", name: "csrf", value: csrf }),
          el("button", { type: "submit", class: `action ${a}`, "data-action": a }, a.toUpperCase())));
      }
      card.append(row);
    }
    const voice = el("ul", { class: "voice" });
    for (const v of s.voice) {
      voice.append(el("li", {}, `${clock(v.ts)} ${v.type} “${v.phrase ?? ""}”${v.confidence === null ? "" : ` ${v.confidence.toFixed(2)}`}`));
    }
    if (!s.voice.length) voice.append(el("li", { class: "none" }, "none yet"));
    card.append(el("h3", {}, "Voice triggers"), voice, el("h3", {}, "Lights"), lightsTable(s.lights, "no lights follow this set"),
      el("p", {}, el("a", { class: "open-light", href: `/light/${encodeURIComponent(s.set)}` }, "Use this screen as a recording light")));
    return card;
  }

  // Ages and link state change with time alone: updated in place, so nothing under a finger moves.
  function tick() {
    if (!snapshot) return;
    for (const node of document.querySelectorAll("[data-ago]")) {
      const ts = Number(node.dataset.ago);
      const text = ts ? `${ago(ts)}${node.dataset.suffix || ""}` : "—";
      if (node.textContent !== text) node.textContent = text;
    }
    for (const node of document.querySelectorAll("[data-beat]")) {
      const age = beatAge(node.dataset.beat);
      node.textContent = age === null ? "none" : `${age.toFixed(1)} s ago`;
    }
    for (const card of sets.querySelectorAll("section.set")) {
      const lost = lostReason(card.dataset.set);
      if (card.dataset.link !== (lost ? "lost" : "ok")) card.dataset.link = lost ? "lost" : "ok";
      const p = card.querySelector(".lost");
      p.hidden = !lost;
      p.textContent = lost ? `LINK LOST (${lost})` : "";
    }
  }

  function render() {
    if (!snapshot) return;
    brokerAlert.hidden = snapshot.broker;
    sets.replaceChildren(...(snapshot.sets.length ? snapshot.sets.map(setCard)
      : [el("p", { class: "empty" }, "No set has been heard on the broker yet.")]));
    document.getElementById("other-lights").replaceWith(Object.assign(lightsTable(snapshot.other_lights, "none"), { id: "other-lights" }));
    const tbody = el("tbody");
    for (const c of snapshot.cards) {
      tbody.append(el("tr", { "data-card": c.roll }, el("td", {}, c.roll), el("td", {}, c.status),
        el("td", {}, `${c.copies.verified} of ${c.copies.required}`), el("td", {}, c.safe_to_wipe ? "YES" : "no")));
    }
    if (!snapshot.cards.length) tbody.append(el("tr", {}, el("td", { colSpan: 4, class: "none" }, "no cards yet")));
    document.querySelector("#cards tbody").replaceWith(tbody);
    tick();
  }

  let streamOpen = false;
  function connect() {
    const source = new EventSource("/events");
    source.onopen = () => { streamOpen = true; streamAlert.hidden = true; };
    source.onerror = () => {
      streamOpen = false;
      streamAlert.hidden = false;
      tick();
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    };
    source.addEventListener("board", (e) => {
      try { snapshot = JSON.parse(e.data); } catch (err) { return; }
      streamOpen = true;
      offset = snapshot.now - Date.now() / 1000;
      const at = performance.now();
      for (const s of snapshot.sets) beats.set(s.set, { age: s.beat_age_s, lost: s.lost, at });
      streamAlert.hidden = true;
      render();
    });
    source.addEventListener("beats", (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch (err) { return; }
      const at = performance.now();
      for (const [setId, b] of Object.entries(data.sets)) beats.set(setId, { age: b.beat_age_s, lost: b.lost, at });
      brokerAlert.hidden = data.broker;
      lightNews = data.lights || {};
      tick();
      tickLights();
    });
  }
  connect();
  setInterval(tick, 500);
})();
