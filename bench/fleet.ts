// The fleet on the simulated GPU cluster (hack/cluster.sh up --full; test/setup/fleet.ts): the chart installed by
// helm, the operator, the gateway and 3 GPU workers as real processes under the process kubelet, N cameras (12) at
// 1 detection per second over RTSP (vtest.avi), each with a presence rule over the whole frame. Measured:
// - apply_to_streaming_s: from creating the cameras to every camera's first stats at the gateway;
// - detection_rate_min / _median: per camera, the frames detected per second over a steady window (its stats'
//   fps), and as a ratio of the 1/s asked for;
// - event_p95_ms: from a frame's capture time (the event's timestamp) to the event arriving over the gateway's SSE;
// - writes_per_min: the operator's API writes (create/update/patch/delete in the apiserver's audit log) per minute
//   at steady state;
// - cpu_per_camera: CPU cores per camera, workers and their ffmpeg children together;
// - move_s: after a worker's SIGKILL, the longest time until each of its cameras streams on another worker.
// Knobs: BENCH_FLEET_CAMERAS (12), BENCH_FLEET_STEADY_SECONDS (60), BENCH_FLEET_FPS (1).
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import {
  applyCameras,
  auditLogPath,
  type Fleet,
  poolManifest,
  startFleet,
  watchCameras,
  wholeFrameRule,
} from "../test/setup/fleet.ts";
import { createCr, ROOT, waitFor } from "../test/setup/operator-env.ts";

const N = Number(process.env.BENCH_FLEET_CAMERAS ?? 12);
const STEADY_S = Number(process.env.BENCH_FLEET_STEADY_SECONDS ?? 60);
const FPS = Number(process.env.BENCH_FLEET_FPS ?? 1);
const WORKERS = 3;
const POOL = "bench";

const progress = (s: string) => process.stderr.write(`[fleet] ${s}\n`);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const r2 = (v: number) => Math.round(v * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds of a process and all its live descendants (the worker's ffmpeg children), from /proc. */
function treeCpuSeconds(root: number): number {
  const parent = new Map<number, number>();
  const cpu = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parent.set(Number(d), Number(f[1]));
      cpu.set(Number(d), (Number(f[11]) + Number(f[12])) / 100);
    } catch {}
  }
  let total = 0;
  for (const [pid, s] of cpu)
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parent.get(p))
      if (p === root) {
        total += s;
        break;
      }
  return total;
}

/** Reads the gateway's SSE event stream, recording capture → arrival for each event. */
function eventLatencies(f: Fleet, base: string) {
  const latencies: number[] = [];
  const ctl = new AbortController();
  const done = (async () => {
    const res = await fetch(`${base}/api/v1/events/stream?access_token=${f.token}`, { signal: ctl.signal });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const now = Date.now();
      buf += dec.decode(value, { stream: true });
      for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (data) latencies.push(now - Date.parse((JSON.parse(data) as { timestamp: string }).timestamp));
      }
    }
  })().catch(() => {});
  return {
    latencies,
    async stop() {
      ctl.abort();
      await done;
    },
  };
}

function operatorWrites(fromByte: number, username: string): number {
  const text = readFileSync(auditLogPath(), "utf8").slice(fromByte);
  let n = 0;
  for (const line of text.split("\n")) {
    if (!line.includes(username)) continue;
    try {
      const e = JSON.parse(line) as { stage: string; verb: string; user: { username: string } };
      if (
        e.stage === "ResponseComplete" &&
        e.user.username === username &&
        /^(create|update|patch|delete)$/.test(e.verb)
      )
        n++;
    } catch {}
  }
  return n;
}

export async function benchFleet() {
  const up = execFileSync("bash", [join(ROOT, "hack", "cluster.sh"), "up", "--full"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const kubeconfig = /export KUBECONFIG=(\S+)/.exec(up)?.[1];
  if (!kubeconfig) throw new Error(`hack/cluster.sh up --full printed no KUBECONFIG: ${up}`);
  const f = await startFleet({ kubeconfig, rtspServers: 3 });
  const watch = watchCameras(f);
  try {
    const perWorker = Math.ceil(N / WORKERS) * 2; // room for a dead worker's cameras
    await createCr(
      f.c,
      "detectorpools",
      f.namespace,
      poolManifest(POOL, { camerasPerWorker: perWorker, minWorkers: WORKERS, maxWorkers: WORKERS }),
    );
    const names = Array.from({ length: N }, (_, i) => `cam-${i}`);
    const at = await applyCameras(f, POOL, names, FPS, wholeFrameRule());
    const streaming = await waitFor(
      "every camera streaming",
      async () => {
        const t = names.map((n) => watch.firstAfter(n, at)?.at);
        return t.every((x) => x !== undefined) ? (t as number[]) : undefined;
      },
      600_000,
      250,
    );
    const applyToStreaming = (Math.max(...streaming) - at) / 1000;
    progress(`all ${N} cameras streaming ${applyToStreaming} s after apply`);

    // Steady state.
    await sleep(10_000);
    const base = await f.gateway();
    const events = eventLatencies(f, base);
    const auditFrom = statSync(auditLogPath()).size;
    const workers = () =>
      f.kubelet.processes().filter((p) => p.namespace === f.namespace && p.pod.startsWith(`${POOL}-worker-`));
    const cpu0 = workers().map((p) => treeCpuSeconds(p.pid));
    const t0 = Date.now();
    await sleep(STEADY_S * 1000);
    const seconds = (Date.now() - t0) / 1000;
    const cpu1 = workers().map((p) => treeCpuSeconds(p.pid));
    const cpuCores = cpu1.reduce((a, b) => a + b, 0) - cpu0.reduce((a, b) => a + b, 0);
    const writes = operatorWrites(auditFrom, `system:serviceaccount:${f.namespace}:${f.release}-operator`);
    await events.stop();
    const rates = names.map((n) => {
      const s = (watch.seen.get(n) ?? []).filter((x) => x.at >= t0);
      return s.length ? s.reduce((a, x) => a + x.fps, 0) / s.length : 0;
    });

    // A worker SIGKILLed: its cameras move.
    const byWorker = new Map<string, string[]>();
    for (const n of names) {
      const w = watch.seen.get(n)?.at(-1)?.worker ?? "";
      byWorker.set(w, [...(byWorker.get(w) ?? []), n]);
    }
    const [victim, moved] = [...byWorker.entries()].sort((a, b) => b[1].length - a[1].length)[0]!;
    const proc = f.kubelet.processes().find((p) => p.pod === victim && p.namespace === f.namespace)!;
    const killAt = Date.now();
    process.kill(proc.pid, "SIGKILL");
    const back = await waitFor(
      "the dead worker's cameras streaming elsewhere",
      async () => {
        const t = moved.map((n) => watch.firstAfter(n, killAt, victim)?.at);
        return t.every((x) => x !== undefined) ? (t as number[]) : undefined;
      },
      120_000,
      250,
    );
    const moveS = (Math.max(...back) - killAt) / 1000;
    progress(`worker ${victim} SIGKILLed: its ${moved.length} cameras streaming elsewhere after ${moveS} s`);

    return {
      bench: "fleet",
      cameras: N,
      workers: WORKERS,
      target_fps: FPS,
      apply_to_streaming_s: r2(applyToStreaming),
      detection_rate_min: r2(Math.min(...rates)),
      detection_rate_median: r2(pct(rates, 50)),
      detection_rate_min_ratio: r2(Math.min(...rates) / FPS),
      events: events.latencies.length,
      event_p50_ms: Math.round(pct(events.latencies, 50)),
      event_p95_ms: Math.round(pct(events.latencies, 95)),
      move_s: r2(moveS),
      moved_cameras: moved.length,
      writes_per_min: r2((writes / seconds) * 60),
      cpu_per_camera: r2(cpuCores / seconds / N),
      steady_seconds: r2(seconds),
      load_avg_1m: r2(loadavg()[0] ?? 0),
    };
  } finally {
    await watch.stop();
    await f.stop();
  }
}
