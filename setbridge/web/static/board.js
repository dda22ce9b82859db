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
  let snapshot = null, receivedAt = 0, offset = 0;

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

  function lightsTable(lights, emptyText) {
    const tbody = el("tbody");
    for (const l of lights) {
      tbody.append(el("tr", { "data-light": l.id }, el("td", {}, l.id), el("td", {}, l.online ? "yes" : "NO"),
        el("td", {}, l.showing || "?"), el("td", {}, l.seen ? ago(l.seen) : "—")));
    }
    if (!lights.length) tbody.append(el("tr", {}, el("td", { colSpan: 4, class: "none" }, emptyText)));
    return el("table", { class: "lights" }, el("thead", {}, el("tr", {}, ...["light", "online", "shows", "last seen"]
      .map((h) => el("th", {}, h)))), tbody);
  }

  function setCard(s) {
    const sinceReceipt = (performance.now() - receivedAt) / 1000;
    const beatAge = s.beat_age_s === null ? null : s.beat_age_s + sinceReceipt;
    const lost = s.lost || (beatAge !== null && beatAge > snapshot.link_timeout_s ? "no heartbeat" : null);
    const card = el("section", { class: "set", "data-set": s.set, "data-state": s.state || "unknown",
      "data-link": lost ? "lost" : "ok" }, el("h2", {}, s.set), el("p", { class: "state" }, (s.state || "unknown").toUpperCase()));
    if (lost) card.append(el("p", { class: "lost" }, `LINK LOST (${lost})`));
    const facts = el("dl", { class: "facts" });
    const fact = (k, v) => facts.append(el("dt", {}, k), el("dd", {}, v));
    fact("Take", s.take === null ? "—" : s.take);
    fact("Last change", s.changed_ts ? `${ago(s.changed_ts)}${s.cause ? ` (${s.cause})` : ""}` : "—");
    if (!s.hubs.length) fact("Hub", "none announced");
    for (const h of s.hubs) {
      fact(`Hub ${h.id}`, `${h.state}, audio ${h.audio}${h.voice === null || h.voice === undefined ? "" : `, voice ${h.voice ? "on" : "off"}`}`);
    }
    fact("Heartbeat", beatAge === null ? "none" : `${beatAge.toFixed(1)} s ago`);
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
  }

  function connect() {
    const source = new EventSource("/events");
    source.onopen = () => { streamAlert.hidden = true; };
    source.onerror = () => {
      streamAlert.hidden = false;
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    };
    source.addEventListener("board", (e) => {
      try { snapshot = JSON.parse(e.data); } catch (err) { return; }
      receivedAt = performance.now();
      offset = snapshot.now - Date.now() / 1000;
      streamAlert.hidden = true;
      render();
    });
  }
  connect();
  setInterval(render, 1000);
})();
