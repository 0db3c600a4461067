// device-bridge page: devices, live points, writes and link traffic, from the bridge's API.
// Every value from the bridge is inserted with textContent, never as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "device-bridge.token";
  const STATS_EVERY_MS = Number(new URLSearchParams(location.search).get("refresh")) || 1000;
  const SPARK_LENGTH = 60;
  const TRAFFIC_KEPT = 200;
  const NUMERIC = new Set(["int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float32", "float64", "float", "int"]);

  const devices = new Map(); // id -> {card, parts, points: Map(point id -> row state)}
  const stream = { ws: null, boot: null, seq: null, retry: 500 };
  const traffic = { ws: null, links: [], selected: null, rows: [] };
  let tokenWaiters = [];

  // -- small DOM helpers -----------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function byId(id) { return document.getElementById(id); }

  function showProblem(text) {
    const box = byId("problem");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function formatValue(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number" && !Number.isInteger(value)) {
      return String(Number(value.toPrecision(7)));
    }
    return String(value);
  }

  function ago(iso) {
    if (!iso) return "never";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
    return `${Math.floor(seconds / 3600)} h`;
  }

  function ms(value) { return value === null || value === undefined ? "—" : `${value.toFixed(1)} ms`; }

  // -- the token: asked once, kept in this tab's session storage ---------------------------

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  function askToken(why) {
    const form = byId("token-form");
    byId("token-why").textContent = why;
    form.hidden = false;
    byId("token-input").focus();
    return new Promise((resolve) => tokenWaiters.push(resolve));
  }

  function tokenGiven(event) {
    event.preventDefault();
    const input = byId("token-input");
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    byId("token-form").hidden = true;
    byId("forget-token").hidden = false;
    const waiting = tokenWaiters;
    tokenWaiters = [];
    waiting.forEach((resolve) => resolve());
    restartStream();
  }

  class Problem extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  // A request to the API with the token; a 401 asks for the token and tries again.
  async function api(path, options = {}, why = "This bridge needs a token to be read.") {
    for (;;) {
      const headers = new Headers(options.headers || {});
      const secret = token();
      if (secret) headers.set("Authorization", `Bearer ${secret}`);
      const response = await fetch(path, { ...options, headers, cache: "no-store" });
      const type = response.headers.get("Content-Type") || "";
      const body = type.includes("json") ? await response.json() : await response.text();
      if (response.status === 401) {
        await askToken(secret ? `That token was refused. ${why}` : why);
        continue;
      }
      if (!response.ok) throw new Problem(response.status, (body && body.detail) || response.statusText);
      return body;
    }
  }

  function base64url(text) {
    let binary = "";
    for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // The token travels as a WebSocket subprotocol: browsers cannot set headers there.
  function openSocket(path) {
    const url = new URL(path, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const protocols = ["device-bridge"];
    const secret = token();
    if (secret) protocols.push(`bearer.${base64url(secret)}`);
    return new WebSocket(url, protocols);
  }

  // -- devices ---------------------------------------------------------------------------

  const STAT_FIELDS = [
    ["last success", (d) => ago(d.last_success) + (d.last_success ? " ago" : "")],
    ["polls", (d) => d.stats.polls],
    ["failures", (d) => d.stats.failures],
    ["missed cycles", (d) => d.stats.missed_cycles],
    ["latency mean", (d) => ms(d.stats.mean_latency_ms)],
    ["latency p99 (recent)", (d) => ms(d.stats.p99_latency_ms)],
  ];

  function deviceCard(detail, link) {
    const card = el("article", "device");
    card.dataset.device = detail.id;
    const title = el("h2");
    title.append(el("span", "name", detail.id));
    const status = el("span", "pill status");
    title.append(status, el("span", "meta", `${detail.driver} · every ${detail.interval} s · ${link ? link.key : ""}`));
    card.append(title);

    const error = el("p", "error-line");
    error.hidden = true;
    const stats = el("dl", "stats");
    const values = {};
    for (const [label] of STAT_FIELDS) {
      const cell = el("div");
      cell.append(el("dt", "", label));
      values[label] = el("dd");
      cell.append(values[label]);
      stats.append(cell);
    }
    card.append(error, stats);

    if (link) {
      const plan = el("details", "plan");
      const shared = link.devices.length > 1
        ? ` (link shared with ${link.devices.filter((d) => d.id !== detail.id).map((d) => d.id).join(", ")})`
        : "";
      plan.append(el("summary", "", `Request plan${shared}`));
      const list = el("ul");
      for (const line of (link.devices.find((d) => d.id === detail.id) || { plan: [] }).plan) {
        list.append(el("li", "", line));
      }
      plan.append(list);
      card.append(plan);
    }

    const table = el("table", "points");
    const head = el("tr");
    for (const [name, optional] of [["point"], ["value"], ["unit"], ["quality"], ["age", true],
      ["seq", true], ["recent", true], ["write"]]) {
      head.append(el("th", optional ? "optional" : "", name));
    }
    table.append(el("thead"), el("tbody"));
    table.tHead.append(head);
    const scroll = el("div", "scroll");
    scroll.append(table);
    card.append(scroll);

    const entry = { card, status, error, values, tbody: table.tBodies[0], points: new Map(), detail };
    for (const point of detail.points) entry.points.set(point.id, pointRow(entry, detail.id, point));
    return entry;
  }

  function updateDevice(entry, detail) {
    entry.detail = detail;
    setStatus(entry, detail.status, detail.last_error, detail.stats.last_error_at);
    for (const [label, get] of STAT_FIELDS) entry.values[label].textContent = String(get(detail));
  }

  function setStatus(entry, status, error, since) {
    entry.status.textContent = status;
    entry.status.className = `pill status ${status}`;
    entry.card.className = `device is-${status}`;
    const failing = status !== "online" && status !== "starting" && error;
    entry.error.hidden = !failing;
    if (failing) entry.error.textContent = `${error}${since ? ` (since ${new Date(since).toLocaleTimeString()})` : ""}`;
  }

  async function refreshDevices() {
    try {
      const details = await Promise.all([...devices.keys()].map((id) => api(`api/v1/devices/${encodeURIComponent(id)}`)));
      for (const detail of details) updateDevice(devices.get(detail.id), detail);
      showProblem("");
    } catch (error) {
      showProblem(`Cannot reach the bridge: ${error.message}`);
    }
  }

  // -- points ----------------------------------------------------------------------------

  function pointRow(entry, deviceId, point) {
    const row = el("tr");
    row.dataset.point = `${deviceId}/${point.id}`;
    const cells = {};
    for (const [name, className] of [["point", ""], ["value", "value"], ["unit", ""], ["quality", ""],
      ["age", "num optional"], ["seq", "num optional"], ["recent", "optional"], ["write", ""]]) {
      cells[name] = el("td", className);
      row.append(cells[name]);
    }
    cells.point.textContent = point.id;
    cells.unit.textContent = point.unit || "";
    const state = { row, cells, point, reading: null, history: [], spark: null };
    if (NUMERIC.has(point.type || "float") || point.type === "bool") {
      state.spark = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      state.spark.setAttribute("class", "spark");
      state.spark.setAttribute("viewBox", "0 0 100 20");
      state.spark.setAttribute("preserveAspectRatio", "none");
      state.spark.append(document.createElementNS("http://www.w3.org/2000/svg", "polyline"));
      cells.recent.append(state.spark);
    }
    if (point.writable) cells.write.append(writeControl(deviceId, point));
    entry.tbody.append(row);
    return state;
  }

  function showReading(reading) {
    const entry = devices.get(reading.device);
    const state = entry && entry.points.get(reading.point);
    if (!state) return;
    state.reading = reading;
    state.cells.value.textContent = formatValue(reading.value);
    state.cells.value.title = reading.error || "";
    state.cells.quality.textContent = "";
    state.cells.quality.append(el("span", `pill ${reading.quality}`, reading.quality));
    state.cells.seq.textContent = String(reading.seq);
    state.cells.age.textContent = ago(reading.ts);
    if (reading.quality === "good" && reading.value !== null) remember(state, reading.value);
    applyFilter(state);
  }

  function remember(state, value) {
    if (!state.spark) return;
    state.history.push(typeof value === "boolean" ? Number(value) : value);
    if (state.history.length > SPARK_LENGTH) state.history.shift();
    drawSpark(state);
  }

  function drawSpark(state) {
    const values = state.history.filter((v) => typeof v === "number" && Number.isFinite(v));
    const line = state.spark.firstChild;
    if (values.length < 2) { line.setAttribute("points", ""); return; }
    const low = Math.min(...values);
    const span = Math.max(...values) - low || 1;
    const step = 100 / (values.length - 1);
    line.setAttribute("points", values.map((v, i) => `${(i * step).toFixed(2)},${(18 - ((v - low) / span) * 16).toFixed(2)}`).join(" "));
  }

  async function loadHistory(deviceId, state) {
    if (!state.spark) return;
    const path = `api/v1/devices/${encodeURIComponent(deviceId)}/points/${encodeURIComponent(state.point.id)}/history?limit=${SPARK_LENGTH}`;
    try {
      const kept = await api(path);
      const live = state.history;
      state.history = kept.readings.filter((r) => r.quality === "good" && r.value !== null)
        .map((r) => (typeof r.value === "boolean" ? Number(r.value) : r.value));
      state.history.push(...live);
      state.history = state.history.slice(-SPARK_LENGTH);
      drawSpark(state);
    } catch (error) { /* the sparkline starts empty; the stream fills it */ }
  }

  function applyFilter(state) {
    const text = byId("filter").value.trim().toLowerCase();
    const onlyBad = byId("only-bad").checked;
    const name = state.row.dataset.point.toLowerCase();
    const quality = state.reading ? state.reading.quality : "bad";
    state.row.classList.toggle("hidden", (text && !name.includes(text)) || (onlyBad && quality === "good"));
  }

  function applyFilters() {
    for (const entry of devices.values()) for (const state of entry.points.values()) applyFilter(state);
  }

  function refreshAges() {
    for (const entry of devices.values()) {
      for (const state of entry.points.values()) {
        if (state.reading) state.cells.age.textContent = ago(state.reading.ts);
      }
    }
  }

  // -- writes ----------------------------------------------------------------------------

  function parseValue(point, text) {
    const type = point.type || "float";
    if (type === "bool") {
      if (/^(true|1|on)$/i.test(text)) return true;
      if (/^(false|0|off)$/i.test(text)) return false;
      throw new Error("a bool is true or false");
    }
    if (NUMERIC.has(type)) {
      const number = Number(text);
      if (text === "" || !Number.isFinite(number)) throw new Error("not a number");
      return number;
    }
    return text;
  }

  function writeControl(deviceId, point) {
    const form = el("form", "write");
    const input = el("input");
    input.name = "value";
    input.placeholder = point.type === "bool" ? "true/false" : "value";
    input.setAttribute("aria-label", `new value of ${point.id}`);
    const button = el("button", "", "Write");
    button.type = "submit";
    const answer = el("output");
    form.append(input, button, answer);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      answer.className = "";
      answer.textContent = "…";
      try {
        const value = parseValue(point, input.value.trim());
        const reading = await api(
          `api/v1/devices/${encodeURIComponent(deviceId)}/points/${encodeURIComponent(point.id)}`,
          { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ value }) },
          "Writes need the write token.",
        );
        answer.className = "ok";
        answer.textContent = `written: ${formatValue(reading.value)}`;
        showReading(reading);
      } catch (error) {
        answer.className = "refused";
        answer.textContent = error.status ? `${error.status}: ${error.message}` : error.message;
      }
    });
    return form;
  }

  // -- the live stream -------------------------------------------------------------------

  function connection(text, className) {
    const pill = byId("connection");
    pill.textContent = text;
    pill.className = `pill ${className}`;
  }

  function startStream() {
    let path = "api/v1/stream";
    if (stream.seq !== null && stream.boot) path += `?since=${stream.seq}&boot=${encodeURIComponent(stream.boot)}`;
    const ws = openSocket(path);
    stream.ws = ws;
    ws.addEventListener("open", () => { connection("live", "online"); stream.retry = 500; });
    ws.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "hello") {
        stream.boot = frame.boot;
      } else if (frame.type === "snapshot" || frame.type === "readings") {
        for (const reading of frame.readings) {
          showReading(reading);
          stream.seq = Math.max(stream.seq || 0, reading.seq);
        }
      } else if (frame.type === "status") {
        const entry = devices.get(frame.device);
        if (entry) setStatus(entry, frame.status, frame.error, frame.status === "offline" ? frame.ts : null);
      }
    });
    ws.addEventListener("close", () => {
      if (stream.ws !== ws) return;
      connection("reconnecting", "pending");
      setTimeout(startStream, stream.retry);
      stream.retry = Math.min(stream.retry * 2, 10000);
    });
  }

  function restartStream() {
    const old = stream.ws;
    if (!old) return;
    stream.ws = null;
    old.close();
    startStream();
  }

  // -- traffic ---------------------------------------------------------------------------

  function openTraffic() {
    const ws = openSocket("api/v1/traffic");
    traffic.ws = ws;
    byId("traffic-state").textContent = "capturing…";
    ws.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "hello") {
        traffic.links = frame.links;
        if (!traffic.links.includes(traffic.selected)) traffic.selected = traffic.links[0] || null;
        drawTabs();
      } else if (frame.type === "exchange") {
        if (!traffic.links.includes(frame.link)) {
          // a link added by a reload while the view was open
          traffic.links.push(frame.link);
          if (traffic.selected === null) traffic.selected = frame.link;
          drawTabs();
        }
        addExchange(frame);
      }
    });
    ws.addEventListener("close", () => {
      if (traffic.ws === ws) {
        traffic.ws = null;
        byId("traffic-state").textContent = "not capturing (the connection closed)";
      }
    });
  }

  function closeTraffic() {
    const ws = traffic.ws;
    traffic.ws = null;
    if (ws) ws.close();
    byId("traffic-state").textContent = "not capturing";
  }

  function drawTabs() {
    const tabs = byId("traffic-links");
    tabs.textContent = "";
    for (const key of traffic.links) {
      const tab = el("button", "", key);
      tab.type = "button";
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-selected", String(key === traffic.selected));
      tab.addEventListener("click", () => { traffic.selected = key; drawTabs(); drawExchanges(); });
      tabs.append(tab);
    }
  }

  function exchangeRow(frame) {
    const row = el("tr", frame.error ? "failed" : "");
    row.dataset.link = frame.link;
    const time = new Date(frame.ts);
    const cells = [
      [time.toLocaleTimeString() + `.${String(time.getMilliseconds()).padStart(3, "0")}`, ""],
      [frame.device, ""], [frame.request, ""], [frame.ms.toFixed(1), "num"],
      [frame.sent, "hex"], [frame.received, "hex"], [frame.error || "", ""],
    ];
    for (const [text, className] of cells) row.append(el("td", className, text));
    return row;
  }

  function addExchange(frame) {
    traffic.rows.push(frame);
    const ofLink = traffic.rows.filter((f) => f.link === frame.link);
    if (ofLink.length > TRAFFIC_KEPT) traffic.rows.splice(traffic.rows.indexOf(ofLink[0]), 1);
    if (frame.link !== traffic.selected) return;
    const body = byId("traffic").tBodies[0];
    body.prepend(exchangeRow(frame));
    while (body.rows.length > TRAFFIC_KEPT) body.lastChild.remove();
    byId("traffic-state").textContent = `capturing: ${frame.link}`;
  }

  function drawExchanges() {
    const body = byId("traffic").tBodies[0];
    body.textContent = "";
    for (const frame of traffic.rows) if (frame.link === traffic.selected) body.prepend(exchangeRow(frame));
  }

  // -- the MQTT broker, when the bridge publishes to one ----------------------------------

  // /api/v1/north describes the broker connection of a bridge with BRIDGE_MQTT_URL set; a
  // bridge without one (or without that route) answers 404 and the pill stays hidden.
  let northKnown = true;

  async function refreshBroker() {
    if (!northKnown) return;
    try {
      const north = await api("api/v1/north");
      showBroker(north);
    } catch (error) {
      if (error.status === 404) northKnown = false;
      refreshBroker();
    }
  }

  function showBroker(north) {
    const pill = byId("broker");
    pill.hidden = !north;
    if (!north) return;
    pill.textContent = `MQTT ${north.state}`;
    pill.title = `${north.broker || ""}${north.last_error ? ` · ${north.last_error}` : ""}` +
      (north.outbox ? ` · outbox ${north.outbox.depth} frame(s)` : "");
    pill.className = `pill ${north.connected ? "online" : "offline"}`;
  }

  // -- start -----------------------------------------------------------------------------

  async function start() {
    byId("token-form").addEventListener("submit", tokenGiven);
    byId("forget-token").hidden = !token();
    byId("forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      byId("forget-token").hidden = true;
      location.reload();
    });
    byId("filter").addEventListener("input", applyFilters);
    byId("only-bad").addEventListener("change", applyFilters);
    byId("traffic-section").addEventListener("toggle", (event) => {
      if (event.target.open) openTraffic(); else closeTraffic();
    });
    refreshBroker();

    const [list, links] = await Promise.all([api("api/v1/devices"), api("api/v1/links")]);
    const linkOf = new Map();
    for (const link of links.links) for (const device of link.devices) linkOf.set(device.id, link);
    const details = await Promise.all(list.devices.map((d) => api(`api/v1/devices/${encodeURIComponent(d.id)}`)));
    const container = byId("devices");
    for (const detail of details) {
      const entry = deviceCard(detail, linkOf.get(detail.id));
      devices.set(detail.id, entry);
      updateDevice(entry, detail);
      container.append(entry.card);
    }
    document.body.dataset.ready = "true";
    startStream();
    for (const [id, entry] of devices) for (const state of entry.points.values()) loadHistory(id, state);
    setInterval(refreshDevices, STATS_EVERY_MS);
    setInterval(refreshBroker, STATS_EVERY_MS);
    setInterval(refreshAges, 1000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    start().catch((error) => showProblem(`The page could not start: ${error.message}`));
  });
})();
