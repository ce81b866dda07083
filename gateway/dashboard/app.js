// Vigil's dashboard: a live grid of cameras, the event feed and one camera's detail, all from the gateway's API.
// Plain browser JavaScript, no build step. The page holds no data: it takes the token from its own URL
// (?access_token=), keeps it in memory and sends it as an Authorization header on fetch, and as ?access_token=
// where a browser cannot send headers (EventSource, the MJPEG <img>, WebSocket). The alarms view is alarms.js, the
// model's risk assessments beside their events assessments.js.

import { createAlarms } from "./alarms.js";
import { createAssessments } from "./assessments.js";

const API = "/api/v1";
const REFRESH_MS = 1000;
const FEED_MAX = 100;
const DETAIL_EVENTS = 50;
const RETRY_MS = 3000;
const STALE_MS = 5000;
// A browser opens at most 6 HTTP/1.1 connections to a host and each MJPEG <img> holds one for good: beside the
// event stream and the polling, a grid with more cameras than this plays them over the video WebSocket instead.
const MJPEG_TILES = 4;

const token = new URLSearchParams(location.search).get("access_token") ?? "";
const $ = (id) => document.getElementById(id);

const state = {
  /** id → { view, tile, refs, statsTs, statsSeenAt } */
  cameras: new Map(),
  seen: new Set(),
  /** { id, seen, camera } while a camera's detail is open */
  detail: null,
  events: null,
  stopped: false,
  /** cameras, camera, alarms or alarm: what the hash shows */
  page: "cameras",
  /** The token's scope (GET /me): only "write" shows the start/stop controls. */
  scope: "read",
};
/** img → function that stops its stream */
const videos = new Map();

// ---- helpers

function h(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") n.textContent = String(v);
    else n.setAttribute(k, v === true ? "" : String(v));
  }
  n.append(...children.filter((c) => c !== null && c !== undefined));
  return n;
}

function svg(tag, attrs = {}) {
  const n = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  return n;
}

const withToken = (path) => `${API}${path}${path.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token)}`;
const cameraPath = (id) => `/cameras/${encodeURIComponent(id)}`;
const cameraHash = (id) => `#/camera/${encodeURIComponent(id)}`;

async function api(path) {
  const r = await fetch(API + path, { headers: { authorization: `Bearer ${token}` }, cache: "no-store" });
  if (r.status === 401) {
    fatal("The gateway did not accept this access token. Check the access_token in the URL.");
    throw new Error("unauthorized");
  }
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    const err = new Error(typeof body.message === "string" ? body.message : `HTTP ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

/** POST, answered 202 with the camera's summary (start/stop). */
async function post(path) {
  const r = await fetch(API + path, { method: "POST", headers: { authorization: `Bearer ${token}` } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(typeof body.message === "string" ? body.message : `HTTP ${r.status}`);
  return body;
}

const fmtFps = (n) => (typeof n === "number" ? n.toFixed(1) : "—");
const fmtInt = (n) => (typeof n === "number" ? String(n) : "—");
const fmtMs = (ms) => {
  if (typeof ms !== "number") return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
};
const fmtTime = (ts) => {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : d.toLocaleTimeString([], { hour12: false });
};

// ---- camera state

/** Notes when a camera's stats last changed, by this page's clock (no skew against the server's). */
function observe(c, view) {
  const ts = view.stats?.timestamp;
  if (ts && ts !== c.statsTs) {
    // First sight: the message may be old already (a worker gone quiet); later ones are at most a poll old.
    const behind = c.statsTs === undefined ? Math.max(0, Date.now() - Date.parse(ts)) || 0 : 0;
    c.statsTs = ts;
    c.statsSeenAt = performance.now() - behind;
  }
  c.view = view;
}

const statsAge = (c) => (c.statsSeenAt === undefined ? undefined : performance.now() - c.statsSeenAt);

function frameAge(c) {
  const age = c.view.stats?.data.last_frame_age_ms;
  return typeof age === "number" ? age + (statsAge(c) ?? 0) : undefined;
}

function phaseOf(c) {
  const v = c.view;
  if (v.paused) return "Paused";
  if (v.status.phase) return v.status.phase;
  if (!v.stats) return "No stats";
  if ((statsAge(c) ?? 0) > STALE_MS) return "Stale";
  return v.stats.data.stream;
}

const phaseClass = (phase) => {
  const p = phase.toLowerCase();
  if (["running", "streaming", "ready"].includes(p)) return "ok";
  if (["failed", "error", "stale", "ended", "stalled", "unschedulable"].includes(p)) return "bad";
  return "wait";
};

// ---- video: MJPEG in an <img>, or JPEG frames over the WebSocket shown as blob: URLs

function setVideo(img, want) {
  const key = want ? `${want.socket ? "ws" : "mjpeg"}:${want.id}` : "";
  if ((img.dataset.stream ?? "") === key) return;
  videos.get(img)?.();
  videos.delete(img);
  img.dataset.stream = key;
  if (!want) return;
  const retry = () => {
    if (img.dataset.stream !== key) return;
    setTimeout(() => {
      if (img.dataset.stream !== key) return;
      img.dataset.stream = "";
      applyVideo();
    }, RETRY_MS);
  };
  img.onerror = retry;
  if (!want.socket) {
    img.src = withToken(`${cameraPath(want.id)}/video.mjpeg`);
    videos.set(img, () => {
      img.onerror = null;
      img.removeAttribute("src");
      img.closest(".has-frame")?.classList.remove("has-frame");
    });
    return;
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}${withToken(`${cameraPath(want.id)}/video`)}`);
  ws.binaryType = "blob";
  let url = "";
  ws.onmessage = (m) => {
    const next = URL.createObjectURL(m.data);
    img.src = next;
    if (url) URL.revokeObjectURL(url);
    url = next;
  };
  ws.onclose = retry;
  videos.set(img, () => {
    img.onerror = null;
    ws.onclose = null;
    ws.close();
    if (url) URL.revokeObjectURL(url);
    img.removeAttribute("src");
    img.closest(".has-frame")?.classList.remove("has-frame");
  });
}

/** Plays what is on screen: the detail's video, or the grid's; nothing while the tab is hidden. */
function applyVideo() {
  // The alarms' pages show no live video: their clip needs the connections the MJPEG tiles would hold.
  const off = state.stopped || document.hidden || state.page === "alarms" || state.page === "alarm";
  const detail = state.detail?.id;
  const socket = state.cameras.size > MJPEG_TILES;
  for (const [id, c] of state.cameras) setVideo(c.refs.img, off || detail ? null : { id, socket });
  setVideo($("detail-video"), off || !detail ? null : { id: detail, socket: false });
}

function markFrames(img, holder) {
  img.addEventListener("load", () => {
    if (img.naturalWidth > 0) holder.classList.add("has-frame");
  });
}

// ---- the grid

function fact(label, testid) {
  const dd = h("dd", { "data-testid": testid, text: "—" });
  return [h("div", {}, h("dt", { text: label }), dd), dd];
}

/** A tile per camera id (`<namespace>/<name>`): the same name in two namespaces is two tiles, told apart by namespace. */
function makeTile(view) {
  const id = view.id;
  const img = h("img", { alt: `Live video of ${id}`, "data-testid": "camera-video" });
  const thumb = h("div", { class: "thumb" }, img, h("span", { class: "waiting", text: "Waiting for video…" }));
  markFrames(img, thumb);
  const [fpsRow, fps] = fact("fps", "camera-fps");
  const [personsRow, persons] = fact("persons", "camera-persons");
  const [ageRow, age] = fact("last frame", "camera-age");
  const [workerRow, worker] = fact("worker", "camera-worker");
  const phase = h("span", { class: "pill", "data-testid": "camera-phase" });
  const note = h("p", { class: "note", hidden: true });
  const link = h(
    "a",
    { href: cameraHash(id), class: "tile-link" },
    thumb,
    h(
      "div",
      { class: "tile-head" },
      h(
        "span",
        { class: "name" },
        h("strong", { "data-testid": "camera-name", text: view.name ?? id }),
        h("span", { class: "muted ns", "data-testid": "camera-namespace", text: view.namespace ?? "" }),
      ),
      phase,
    ),
    h("dl", { class: "stats" }, fpsRow, personsRow, ageRow, workerRow),
    note,
  );
  // Beside the link, not in it (no button inside an <a>); shown only to a write token.
  const control = h("button", { type: "button", class: "control", "data-testid": "camera-control", hidden: true });
  control.addEventListener("click", () => toggle(id, control));
  const tile = h("li", { class: "tile", "data-testid": "camera-tile", "data-camera": id }, link, control);
  return { tile, refs: { img, fps, persons, age, worker, phase, note, link, control } };
}

/** A start/stop button's face for a camera view: Stop while it runs, Start while paused. */
function showControl(button, view) {
  button.hidden = state.scope !== "write" || !view;
  if (button.hidden || button.dataset.busy) return;
  const paused = view.paused === true;
  button.dataset.action = paused ? "start" : "stop";
  button.textContent = paused ? "▶ Start" : "■ Stop";
  button.setAttribute("aria-label", `${paused ? "Start" : "Stop"} camera ${view.id}`);
}

/** Clicks on a start/stop control: POST, then show the answer's camera (its phase) at once, without a reload. */
async function toggle(id, button) {
  if (button.dataset.busy) return;
  const action = button.dataset.action;
  button.dataset.busy = "1";
  button.disabled = true;
  try {
    const view = await post(`${cameraPath(id)}/${action}`);
    const c = state.cameras.get(id);
    if (c) {
      observe(c, view);
      updateTile(c);
    }
    if (state.detail?.id === id) state.detail.camera = view;
    $("reach").textContent = "";
  } catch (err) {
    $("reach").textContent = `Could not ${action} ${id}: ${err.message}`;
  } finally {
    delete button.dataset.busy;
    button.disabled = false;
    const c = state.cameras.get(id);
    showControl(button, c?.view ?? state.detail?.camera);
    if (state.detail?.id === id) updateDetailStats();
  }
}

function updateTile(c) {
  const { refs, view } = c;
  // A paused camera's last stats are of its previous run: not shown as if current.
  const data = view.paused ? undefined : view.stats?.data;
  refs.fps.textContent = fmtFps(data?.fps);
  refs.persons.textContent = fmtInt(data?.persons);
  refs.age.textContent = fmtMs(data ? frameAge(c) : undefined);
  refs.worker.textContent = view.status.worker ?? "—";
  const phase = phaseOf(c);
  refs.phase.textContent = phase;
  refs.phase.dataset.state = phaseClass(phase);
  refs.note.hidden = !data?.error;
  refs.note.textContent = data?.error ?? "";
  refs.link.setAttribute(
    "aria-label",
    `${view.id}: ${phase}, ${fmtFps(data?.fps)} fps, ${fmtInt(data?.persons)} persons`,
  );
  showControl(refs.control, view);
}

function render(views) {
  const grid = $("grid");
  const ids = new Set(views.map((v) => v.id));
  for (const [id, c] of state.cameras)
    if (!ids.has(id)) {
      setVideo(c.refs.img, null);
      c.tile.remove();
      state.cameras.delete(id);
    }
  let prev = null;
  for (const view of views) {
    let c = state.cameras.get(view.id);
    if (!c) {
      c = { ...makeTile(view), view };
      state.cameras.set(view.id, c);
    }
    observe(c, view);
    updateTile(c);
    // Keep the catalog's order.
    const at = prev ? prev.nextSibling : grid.firstChild;
    if (at !== c.tile) grid.insertBefore(c.tile, at);
    prev = c.tile;
  }
  $("cameras-empty").hidden = views.length > 0;
  const live = views.filter((v) => !v.paused);
  const streaming = live.filter((v) => v.stats?.data.stream === "streaming").length;
  const persons = live.reduce((n, v) => n + (v.stats?.data.persons ?? 0), 0);
  $("summary").textContent =
    `${views.length} camera${views.length === 1 ? "" : "s"} · ${streaming} streaming · ${persons} person${persons === 1 ? "" : "s"}`;
  if (state.detail) updateDetailStats();
  applyVideo();
}

async function refresh() {
  try {
    const { cameras } = await api("/cameras");
    if (state.stopped) return;
    render(cameras);
    alarms.fillCameras(cameras.map((c) => c.id));
    $("reach").textContent = "";
  } catch (err) {
    if (!state.stopped) $("reach").textContent = `Gateway unreachable (${err.message}); retrying…`;
  } finally {
    if (!state.stopped) setTimeout(refresh, REFRESH_MS);
  }
}

// ---- events

function eventRow(e) {
  const row = h(
    "li",
    { class: "event", "data-testid": "event-row", "data-ts": Date.parse(e.timestamp) || 0, "data-id": e.id },
    h(
      "div",
      { class: "event-line" },
      h("span", { class: `sev sev-${e.severity}`, text: e.severity }),
      h("strong", { class: "rule", text: e.rule }),
      h("span", { class: "muted kind", text: e.kind }),
      h("time", { datetime: e.timestamp, text: fmtTime(e.timestamp) }),
    ),
    h(
      "div",
      { class: "event-line muted" },
      h("a", { href: cameraHash(e.camera_id), text: e.camera_id }),
      h("span", { text: `track ${e.track_id}` }),
      e.zone ? h("span", { text: `zone ${e.zone}` }) : null,
    ),
  );
  if (e.detail) row.title = e.detail;
  assessments.decorate(row);
  return row;
}

/** Inserts newest first, whatever order events arrive in (live, history, a reconnect's catch-up); keeps `max`. */
function insertEvent(list, seen, e, max) {
  if (seen.has(e.id)) return;
  seen.add(e.id);
  const row = eventRow(e);
  const ts = Number(row.dataset.ts);
  let at = list.firstElementChild;
  while (at && Number(at.dataset.ts) > ts) at = at.nextElementSibling;
  list.insertBefore(row, at);
  while (list.children.length > max) {
    seen.delete(list.lastElementChild.dataset.id);
    list.lastElementChild.remove();
  }
}

function addEvent(e) {
  insertEvent($("events"), state.seen, e, FEED_MAX);
  $("events-empty").hidden = true;
  const d = state.detail;
  if (d && e.camera_id === d.id) {
    insertEvent($("detail-events"), d.seen, e, DETAIL_EVENTS);
    $("detail-events-empty").hidden = true;
  }
}

function setLive(s) {
  const live = $("live");
  live.dataset.state = s;
  live.textContent = `events: ${s}`;
}

async function loadHistory() {
  try {
    const { events } = await api(`/events?limit=${FEED_MAX}`);
    for (const e of events) addEvent(e);
  } catch {
    // the live stream still runs; the poll reports an unreachable gateway
  }
}

function connectEvents() {
  if (state.stopped) return;
  const es = new EventSource(withToken("/events/stream"));
  state.events = es;
  es.onopen = () => setLive("live");
  es.onmessage = (m) => {
    try {
      addEvent(JSON.parse(m.data));
    } catch {
      // not an event: ignore
    }
  };
  es.onerror = () => {
    if (es.readyState !== EventSource.CLOSED) return setLive("reconnecting");
    // EventSource gives up on an HTTP error: start again, and fetch what was missed meanwhile.
    setLive("off");
    setTimeout(() => {
      if (state.stopped || state.events !== es) return;
      connectEvents();
      loadHistory();
    }, RETRY_MS);
  };
}

// ---- a camera's detail

function drawZones(zones) {
  const overlay = $("zones");
  const labels = $("zone-labels");
  overlay.replaceChildren();
  labels.replaceChildren();
  for (const z of zones) {
    const pts = z.polygon.filter((p) => p.length >= 2);
    if (pts.length < 3) continue;
    const poly = svg("polygon", {
      points: pts.map(([x, y]) => `${x},${y}`).join(" "),
      class: "zone",
      "data-testid": "zone-polygon",
      "data-zone": z.name,
    });
    poly.append(svg("title"));
    poly.firstChild.textContent = z.name;
    overlay.append(poly);
    const cx = pts.reduce((s, p) => s + p[0], 0) / pts.length;
    const cy = pts.reduce((s, p) => s + p[1], 0) / pts.length;
    const label = h("span", { class: "zone-label", text: z.name });
    label.style.left = `${(cx * 100).toFixed(2)}%`;
    label.style.top = `${(cy * 100).toFixed(2)}%`;
    labels.append(label);
  }
}

function updateDetailStats() {
  const d = state.detail;
  const c = d && state.cameras.get(d.id);
  const view = c?.view ?? d?.camera;
  if (!view) return;
  const data = view.stats?.data;
  const phase = c ? phaseOf(c) : (view.status.phase ?? "—");
  $("detail-phase").textContent = phase;
  $("detail-phase").dataset.state = phaseClass(phase);
  showControl($("detail-control"), view);
  const facts = [
    ["fps", `${fmtFps(data?.fps)} of ${view.targetFps}`],
    ["persons", fmtInt(data?.persons)],
    ["last frame", fmtMs(c ? frameAge(c) : undefined)],
    ["inference", data ? `${data.inference_ms.toFixed(1)} ms (${data.provider})` : "—"],
    ["stream", data ? `${data.stream}, ${data.reconnects} reconnects` : "—"],
    ["worker", view.status.worker ?? "—"],
    ["pool", view.pool],
    ["source", view.source],
  ];
  if (data?.error) facts.push(["error", data.error]);
  $("detail-stats").replaceChildren(
    ...facts.map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", { text: v, "data-fact": k }))),
  );
}

async function openDetail(id) {
  if (state.detail?.id === id) return;
  const d = { id, seen: new Set(), camera: null };
  state.detail = d;
  $("overview").hidden = true;
  $("detail").hidden = false;
  $("detail-title").textContent = id;
  $("detail-missing").hidden = true;
  $("detail-frame").style.removeProperty("aspect-ratio");
  $("detail-video").alt = `Live video of ${id}`;
  for (const list of ["detail-stats", "detail-zones", "detail-rules", "detail-events", "zones", "zone-labels"])
    $(list).replaceChildren();
  $("detail-events-empty").hidden = false;
  assessments.openCamera(id);
  $("detail-title").focus();
  updateDetailStats();
  try {
    const camera = await api(cameraPath(id));
    if (state.detail !== d) return;
    d.camera = camera;
    drawZones(camera.zones);
    $("detail-zones").replaceChildren(...camera.zones.map((z) => h("li", { class: "chip", text: z.name })));
    $("detail-rules").replaceChildren(
      ...camera.rules.map((r) =>
        h(
          "li",
          { class: "chip" },
          h("span", { class: `sev sev-${r.severity}`, text: r.severity }),
          ` ${r.name} (${r.kind})`,
        ),
      ),
    );
    updateDetailStats();
    const { events } = await api(`${cameraPath(id)}/events?limit=${DETAIL_EVENTS}`);
    if (state.detail !== d) return;
    for (const e of events) insertEvent($("detail-events"), d.seen, e, DETAIL_EVENTS);
    $("detail-events-empty").hidden = $("detail-events").children.length > 0;
  } catch (err) {
    if (state.detail !== d || state.stopped) return;
    $("detail-missing").hidden = false;
    $("detail-missing").textContent =
      err.status === 404 ? `There is no camera ${id}.` : `Could not load ${id}: ${err.message}`;
  }
}

function closeDetail() {
  const d = state.detail;
  if (!d) return;
  state.detail = null;
  assessments.closeCamera();
  $("detail").hidden = true;
  $("overview").hidden = false;
  state.cameras.get(d.id)?.refs.link.focus();
}

function route() {
  if (state.stopped) return;
  const m = /^#\/camera\/(.+)$/.exec(location.hash);
  const alarm = /^#\/alarm\/(.+)$/.exec(location.hash);
  state.page = m ? "camera" : alarm ? "alarm" : location.hash === "#/alarms" ? "alarms" : "cameras";
  if (m) openDetail(decodeURIComponent(m[1]));
  else closeDetail();
  $("overview").hidden = state.page !== "cameras";
  $("detail").hidden = state.page !== "camera";
  alarms.show(state.page, alarm ? decodeURIComponent(alarm[1]) : undefined);
  for (const a of document.querySelectorAll("nav.views a"))
    a.setAttribute(
      "aria-current",
      a.dataset.view === (state.page === "alarm" ? "alarms" : state.page === "camera" ? "cameras" : state.page)
        ? "page"
        : "false",
    );
  applyVideo();
}

// ---- start

function fatal(message) {
  state.stopped = true;
  state.events?.close();
  assessments.stop();
  setLive("off");
  applyVideo();
  for (const id of ["overview", "detail", "feed", "live", "alarms", "alarm", "views"]) $(id).hidden = true;
  alarms.show("none");
  $("fatal").textContent = message;
  $("fatal").hidden = false;
}

/** The token's name and scope; a gateway without /me (or any failure) leaves the page read-only. */
async function loadScope() {
  try {
    const me = await api("/me");
    state.scope = me.scope === "write" ? "write" : "read";
  } catch {
    state.scope = "read";
  }
  for (const c of state.cameras.values()) showControl(c.refs.control, c.view);
  if (state.detail) updateDetailStats();
}

function start() {
  if (!token) {
    $("notoken-example").textContent = `${location.origin}/?access_token=YOUR_TOKEN`;
    $("notoken").hidden = false;
    return;
  }
  for (const id of ["overview", "feed", "live", "views"]) $(id).hidden = false;
  alarms.start();
  const detailVideo = $("detail-video");
  markFrames(detailVideo, $("detail-frame"));
  detailVideo.addEventListener("load", () => {
    if (detailVideo.naturalWidth > 0)
      $("detail-frame").style.aspectRatio = `${detailVideo.naturalWidth} / ${detailVideo.naturalHeight}`;
  });
  $("show-zones").addEventListener("change", (e) => {
    $("detail-frame").classList.toggle("no-zones", !e.target.checked);
  });
  $("detail-control").addEventListener("click", () => {
    if (state.detail) toggle(state.detail.id, $("detail-control"));
  });
  $("back").addEventListener("click", () => {
    history.pushState(null, "", location.pathname + location.search);
    route();
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.detail) $("back").click();
    else if (e.key === "Escape" && state.page === "alarm") $("alarm-back").click();
  });
  document.addEventListener("visibilitychange", applyVideo);
  window.addEventListener("hashchange", route);
  connectEvents();
  loadHistory();
  assessments.start();
  loadScope();
  refresh();
  route();
}

const alarms = createAlarms({ $, h, api, withToken, fmtTime, isStopped: () => state.stopped });
const assessments = createAssessments({ $, h, api, withToken, fmtTime, isStopped: () => state.stopped });

start();
