// The dashboard's alarms: a list (newest first, filters by camera and severity, older pages on demand) with each
// alarm's snapshot, severity, time, camera and delivery state per webhook type; and one alarm's page with its
// replay clip in a <video> (the gateway serves range requests, so it seeks), its snapshot and every delivery
// attempt. Live over the alarms WebSocket: an alarm appears when it is admitted and changes at each step.
// A <video> or <img> cannot send headers: their URLs carry ?access_token=, like the MJPEG tiles.

const PAGE = 50;
const RETRY_MS = 3000;
const TYPES = ["alarm.raised", "alarm.clip"];
const LABEL = { "alarm.raised": "raised", "alarm.clip": "clip" };

export function createAlarms({ $, h, api, withToken, fmtTime, isStopped }) {
  const st = {
    /** id → { alarm, row } of the listed alarms */
    rows: new Map(),
    next: null,
    /** The alarm whose page is open: { id, alarm } */
    open: null,
    active: false,
    ws: null,
    loaded: false,
  };
  const apiPath = (link) => link.replace(/^\/api\/v1/, "");
  const alarmHash = (id) => `#/alarm/${encodeURIComponent(id)}`;
  const filter = () => ({ camera: $("alarms-camera").value, severity: $("alarms-severity").value });
  const matches = (a) => {
    const f = filter();
    return (!f.camera || a.camera_id === f.camera) && (!f.severity || a.severity === f.severity);
  };

  function deliveryChips(a) {
    return h(
      "span",
      { class: "deliveries" },
      ...TYPES.map((t) =>
        h("span", {
          class: "delivery",
          "data-testid": `delivery-${LABEL[t]}`,
          "data-state": a.delivery[t],
          title: `${t}: ${a.delivery[t]}`,
          text: `${LABEL[t]} ${a.delivery[t] === "delivered" ? "✓" : a.delivery[t] === "failed" ? "✗" : "…"}`,
        }),
      ),
    );
  }

  function thumb(a) {
    if (!a.links.snapshot) return h("span", { class: "alarm-thumb none", text: "no snapshot" });
    return h("img", {
      class: "alarm-thumb",
      src: withToken(apiPath(a.links.snapshot)),
      alt: `Snapshot of ${a.camera_id} at ${a.timestamp}`,
      loading: "lazy",
      "data-testid": "alarm-thumb",
    });
  }

  function makeRow(a) {
    const row = h(
      "li",
      { class: "alarm-row", "data-testid": "alarm-row", "data-id": a.id, "data-ts": a.event_ms },
      h(
        "a",
        { href: alarmHash(a.id), class: "alarm-link" },
        thumb(a),
        h(
          "span",
          { class: "alarm-main" },
          h(
            "span",
            { class: "event-line" },
            h("span", { class: `sev sev-${a.severity}`, "data-testid": "alarm-severity", text: a.severity }),
            h("strong", { class: "rule", text: a.rule }),
            h("span", { class: "muted", "data-testid": "alarm-camera", text: a.camera_id }),
            h("time", { datetime: a.timestamp, text: fmtTime(a.timestamp), "data-testid": "alarm-time" }),
          ),
          h(
            "span",
            { class: "event-line muted" },
            h("span", { text: `track ${a.track_id}` }),
            a.zone ? h("span", { text: `zone ${a.zone}` }) : null,
            a.duplicates ? h("span", { text: `+${a.duplicates} folded` }) : null,
            h("span", { class: `pill status-${a.status}`, "data-testid": "alarm-status", text: a.status }),
          ),
          deliveryChips(a),
        ),
      ),
    );
    if (a.dead_reason) row.title = a.dead_reason;
    return row;
  }

  /** Inserts or replaces an alarm's row, newest first by (event time, id) as the API orders them. */
  function upsert(a) {
    const old = st.rows.get(a.id);
    if (old && old.alarm.updated_ms > a.updated_ms) return;
    const row = makeRow(a);
    if (old) old.row.replaceWith(row);
    else {
      const list = $("alarm-rows");
      let at = list.firstElementChild;
      while (
        at &&
        (Number(at.dataset.ts) > a.event_ms || (Number(at.dataset.ts) === a.event_ms && at.dataset.id > a.id))
      )
        at = at.nextElementSibling;
      list.insertBefore(row, at);
    }
    st.rows.set(a.id, { alarm: a, row });
    $("alarms-empty").hidden = true;
  }

  async function load(reset) {
    const f = filter();
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (f.camera) q.set("camera", f.camera);
    if (f.severity) q.set("severity", f.severity);
    if (!reset && st.next) q.set("cursor", st.next);
    if (reset) {
      st.rows.clear();
      $("alarm-rows").replaceChildren();
      st.next = null;
    }
    try {
      const page = await api(`/alarms?${q}`);
      for (const a of page.alarms) upsert(a);
      st.next = page.next;
      $("alarms-more").hidden = !page.next;
      $("alarms-error").hidden = true;
      $("alarms-empty").hidden = st.rows.size > 0;
    } catch (err) {
      $("alarms-error").hidden = false;
      $("alarms-error").textContent =
        err.status === 503 ? `Alarms are unavailable: ${err.message}` : `Could not load alarms: ${err.message}`;
    }
  }

  function connect() {
    if (st.ws || isStopped()) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${withToken("/alarms/ws")}`);
    st.ws = ws;
    ws.onopen = () => {
      $("alarms-live").dataset.state = "live";
      $("alarms-live").textContent = "live";
    };
    ws.onmessage = (m) => {
      let a;
      try {
        a = JSON.parse(m.data);
      } catch {
        return;
      }
      if (matches(a)) upsert(a);
      if (st.open?.id === a.id) showAlarm(a, false);
    };
    ws.onclose = () => {
      if (st.ws !== ws) return;
      st.ws = null;
      $("alarms-live").dataset.state = "off";
      $("alarms-live").textContent = "reconnecting";
      // What changed meanwhile comes with a fresh first page.
      setTimeout(() => {
        if (!st.active || isStopped()) return;
        connect();
        load(true);
      }, RETRY_MS);
    };
  }

  function disconnect() {
    const ws = st.ws;
    st.ws = null;
    ws?.close();
  }

  function fillCameras(cameras) {
    const sel = $("alarms-camera");
    const keep = sel.value;
    sel.replaceChildren(
      h("option", { value: "", text: "All cameras" }),
      ...cameras.map((id) => h("option", { value: id, text: id })),
    );
    sel.value = cameras.includes(keep) ? keep : "";
  }

  // ---- one alarm

  const fmtMs = (ms) => (typeof ms === "number" ? `${Math.round(ms)} ms` : "—");
  const at = (ms) => (typeof ms === "number" ? fmtTime(new Date(ms).toISOString()) : "—");

  function showAlarm(a, reloadMedia) {
    st.open = { id: a.id, alarm: a };
    $("alarm-title").textContent = `${a.rule} · ${a.camera_id}`;
    $("alarm-status").textContent = a.status;
    $("alarm-status").className = `pill status-${a.status}`;
    $("alarm-deliveries").replaceChildren(deliveryChips(a));
    const facts = [
      ["time", new Date(a.event_ms).toLocaleString([], { hour12: false })],
      ["severity", a.severity],
      ["camera", a.camera_id],
      ["rule", `${a.rule} (${a.kind})`],
      // An assessment alarm's detail is the model's risk and reason.
      ...(a.detail ? [["detail", a.detail]] : []),
      ["track", String(a.track_id)],
      ["zone", a.zone ?? "—"],
      ["window", `${a.pre_seconds} s before, ${a.post_seconds} s after`],
      ["raised delivered", at(a.raised_delivered_ms)],
      ["clip ready", at(a.clip_ready_ms)],
      ["clip delivered", at(a.clip_delivered_ms)],
      ["folded", String(a.duplicates)],
    ];
    if (a.dead_reason) facts.push(["dead", a.dead_reason]);
    $("alarm-facts").replaceChildren(
      ...facts.map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", { text: v, "data-fact": k }))),
    );
    const snap = $("alarm-snapshot");
    snap.hidden = !a.links.snapshot;
    if (a.links.snapshot && reloadMedia) snap.src = withToken(apiPath(a.links.snapshot));
    const video = $("alarm-clip");
    // The clip becomes ready after the post-roll: load it then, once.
    if (reloadMedia || (a.clip_ready_ms !== null && video.dataset.alarm === a.id && video.dataset.failed)) {
      video.dataset.alarm = a.id;
      delete video.dataset.failed;
      $("alarm-clip-note").hidden = true;
      video.src = withToken(apiPath(a.links.clip));
      video.load();
    }
    loadAttempts(a.id);
  }

  async function loadAttempts(id) {
    try {
      const detail = await api(`/alarms/${encodeURIComponent(id)}`);
      if (st.open?.id !== id) return;
      $("alarm-attempts").replaceChildren(
        ...detail.attempts.map((t) =>
          h(
            "tr",
            { "data-testid": "attempt-row", "data-type": t.type },
            h("td", { text: t.type }),
            h("td", { text: at(t.started_ms) }),
            h("td", {
              text: t.status_code === null ? (t.finished_ms === null ? "in flight" : "—") : String(t.status_code),
            }),
            h("td", { text: fmtMs(t.latency_ms) }),
            h("td", { class: "muted", text: t.error ?? "" }),
          ),
        ),
      );
      $("alarm-attempts-empty").hidden = detail.attempts.length > 0;
    } catch {
      // the live feed or the next open tries again
    }
  }

  async function openAlarm(id) {
    if (st.open?.id === id) return;
    st.open = { id, alarm: null };
    $("alarm-title").textContent = id;
    $("alarm-missing").hidden = true;
    for (const list of ["alarm-facts", "alarm-attempts", "alarm-deliveries"]) $(list).replaceChildren();
    const video = $("alarm-clip");
    video.removeAttribute("src");
    video.load();
    try {
      const a = await api(`/alarms/${encodeURIComponent(id)}`);
      if (st.open?.id !== id) return;
      showAlarm(a, true);
    } catch (err) {
      if (st.open?.id !== id) return;
      $("alarm-missing").hidden = false;
      $("alarm-missing").textContent =
        err.status === 404 ? `There is no alarm ${id}.` : `Could not load ${id}: ${err.message}`;
    }
  }

  function closeAlarm() {
    st.open = null;
    const video = $("alarm-clip");
    video.pause();
    video.removeAttribute("src");
    video.load();
  }

  function start() {
    $("alarms-camera").addEventListener("change", () => load(true));
    $("alarms-severity").addEventListener("change", () => load(true));
    $("alarms-more").addEventListener("click", () => load(false));
    $("alarm-back").addEventListener("click", () => {
      location.hash = "#/alarms";
    });
    $("alarm-clip").addEventListener("error", () => {
      const video = $("alarm-clip");
      if (!video.getAttribute("src")) return;
      video.dataset.failed = "1";
      $("alarm-clip-note").hidden = false;
      $("alarm-clip-note").textContent =
        st.open?.alarm && st.open.alarm.clip_ready_ms === null
          ? "The clip is not ready yet: it is cut once the post-roll is recorded."
          : "The clip could not be played (removed by retention?).";
    });
  }

  /** page: "alarms" (the list), "alarm" (one, `id`), or anything else (neither shown). */
  function show(page, id) {
    const on = page === "alarms" || page === "alarm";
    st.active = on;
    $("alarms").hidden = page !== "alarms";
    $("alarm").hidden = page !== "alarm";
    if (!on) {
      closeAlarm();
      disconnect();
      return;
    }
    connect();
    if (!st.loaded) {
      st.loaded = true;
      load(true);
    }
    if (page === "alarm") openAlarm(id);
    else closeAlarm();
  }

  return { start, show, fillCameras };
}
