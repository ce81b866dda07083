// The dashboard's risk assessments (the model's answers, from `vigil assessor`): each one shown inside the row of
// the event that caused it (its trigger.event_id is the event's id), with the risk as a coloured level, the labels
// and the reason; and a camera's latest and recent ones in its detail, periodic samples included. Live over the
// assessments WebSocket (it does not take one of the browser's six HTTP connections per host, which the event
// stream, the polling and the MJPEG tiles use); on a reconnect the recent ones are fetched again.

const RECENT = 200;
const DETAIL = 20;
const RETRY_MS = 3000;
/** Results remembered for events not (or no longer) on screen: an event row made later still gets its answer. */
const KEEP = 500;
const RISK_WORD = ["none", "low", "elevated", "high"];

export function createAssessments({ $, h, api, withToken, fmtTime, isStopped }) {
  const st = {
    /** event id → result */
    byEvent: new Map(),
    /** The camera whose detail is open: { id, seen: Set<result id> } */
    camera: null,
    ws: null,
    stopped: false,
  };

  const riskPill = (r) =>
    h("span", {
      class: `risk risk-${r.risk}`,
      "data-testid": "assessment-risk",
      "data-risk": r.risk,
      title: `risk ${r.risk} of 3 (${RISK_WORD[r.risk] ?? "?"})`,
      text: `risk ${r.risk}`,
    });

  const labels = (r) =>
    r.labels.length
      ? h(
          "span",
          { class: "assessment-labels", "data-testid": "assessment-labels" },
          ...r.labels.map((l) => h("span", { class: "label", text: l })),
        )
      : null;

  /** The block inside an event row. */
  function inline(r) {
    return h(
      "div",
      { class: "assessment", "data-testid": "event-assessment", "data-id": r.id, "data-risk": r.risk },
      h("div", { class: "event-line" }, riskPill(r), labels(r)),
      h("p", { class: "assessment-reason", "data-testid": "assessment-reason", text: r.reason }),
    );
  }

  /** An item of a camera's list: what triggered it, its time, its risk, labels and reason. */
  function item(r, testid = "detail-assessment") {
    const what = r.trigger.kind === "event" ? r.trigger.rule : "periodic sample";
    return h(
      "li",
      {
        class: "event assessment-item",
        "data-testid": testid,
        "data-id": r.id,
        "data-risk": r.risk,
        "data-ts": Date.parse(r.completed_at) || 0,
      },
      h(
        "div",
        { class: "event-line" },
        riskPill(r),
        h("strong", { class: "rule", "data-testid": "assessment-trigger", text: what }),
        labels(r),
        h("time", { datetime: r.completed_at, text: fmtTime(r.completed_at) }),
      ),
      h("p", { class: "assessment-reason", "data-testid": "assessment-reason", text: r.reason }),
    );
  }

  /** Puts (or replaces) the answer in an event row whose event caused it. */
  function decorate(row) {
    const r = st.byEvent.get(row.dataset.id);
    if (!r) return;
    row.querySelector(".assessment")?.remove();
    row.append(inline(r));
    row.dataset.risk = String(r.risk);
  }

  function remember(r) {
    if (r.trigger.kind !== "event") return;
    st.byEvent.delete(r.trigger.event_id);
    st.byEvent.set(r.trigger.event_id, r);
    while (st.byEvent.size > KEEP) st.byEvent.delete(st.byEvent.keys().next().value);
    for (const row of document.querySelectorAll(`li.event[data-id="${CSS.escape(r.trigger.event_id)}"]`)) decorate(row);
  }

  /** Into the open camera's list, newest first, without repeats. */
  function addToCamera(r) {
    const c = st.camera;
    if (!c || r.camera_id !== c.id || c.seen.has(r.id)) return;
    c.seen.add(r.id);
    const list = $("detail-assessments");
    const row = item(r);
    const ts = Number(row.dataset.ts);
    let at = list.firstElementChild;
    while (at && Number(at.dataset.ts) > ts) at = at.nextElementSibling;
    list.insertBefore(row, at);
    while (list.children.length > DETAIL) {
      c.seen.delete(list.lastElementChild.dataset.id);
      list.lastElementChild.remove();
    }
    $("detail-assessments-empty").hidden = true;
    showLatest(list.firstElementChild?.dataset.id === r.id ? r : undefined);
  }

  function showLatest(r) {
    if (!r) return;
    $("detail-assessment-latest").replaceChildren(item(r, "detail-assessment-latest"));
    $("detail-assessment-latest").hidden = false;
  }

  function add(r) {
    remember(r);
    addToCamera(r);
  }

  async function loadRecent() {
    try {
      const { assessments } = await api(`/assessments?limit=${RECENT}`);
      // Oldest first, so the newest answer of an event wins.
      for (const r of assessments.reverse()) remember(r);
    } catch {
      // the live socket still runs; the camera poll reports an unreachable gateway
    }
  }

  function connect() {
    if (st.stopped || isStopped()) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${withToken("/assessments/ws")}`);
    st.ws = ws;
    ws.onmessage = (m) => {
      try {
        add(JSON.parse(m.data));
      } catch {
        // not a result: ignore
      }
    };
    ws.onclose = () => {
      if (st.ws !== ws || st.stopped) return;
      setTimeout(() => {
        if (st.ws !== ws || st.stopped) return;
        connect();
        loadRecent();
        if (st.camera) loadCamera(st.camera);
      }, RETRY_MS);
    };
  }

  async function loadCamera(c) {
    try {
      const { latest, assessments } = await api(`/cameras/${encodeURIComponent(c.id)}/assessments?limit=${DETAIL}`);
      if (st.camera !== c) return;
      for (const r of assessments.reverse()) {
        remember(r);
        addToCamera(r);
      }
      if (latest) {
        remember(latest);
        addToCamera(latest);
        showLatest(latest);
      }
    } catch {
      // shown as "none yet"; the live socket still adds new ones
    }
  }

  return {
    decorate,
    start() {
      connect();
      loadRecent();
    },
    /** A camera's detail opened: its latest and recent answers. */
    openCamera(id) {
      const c = { id, seen: new Set() };
      st.camera = c;
      $("detail-assessments").replaceChildren();
      $("detail-assessment-latest").replaceChildren();
      $("detail-assessment-latest").hidden = true;
      $("detail-assessments-empty").hidden = false;
      loadCamera(c);
    },
    closeCamera() {
      st.camera = null;
    },
    stop() {
      st.stopped = true;
      st.ws?.close();
    },
  };
}
