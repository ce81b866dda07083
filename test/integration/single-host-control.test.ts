// Starting and stopping one camera through the gateway under `vigil up`: a real `vigil up` process with two cameras on
// one real worker (YOLOv8n on vtest.avi, the IPC bus), driven over HTTP with the token it generates. Stopping one
// camera ends its pipeline inside the running worker (no restart) while the other keeps streaming; starting it
// brings fresh stats within 5 s; the state survives a worker restart and lasts until `vigil up` exits.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { StatsMessage } from "../../worker/publish/messages.ts";
import { FIXTURES, waitFor } from "../setup/services.ts";
import { startUp, type UpProc } from "../setup/vigil-up.ts";

const VIDEO = join(FIXTURES, "vtest.avi");
const dir = mkdtempSync(join(tmpdir(), "vigil-control-"));
const A = "default/cam-a";
const B = "default/cam-b";
const enc = encodeURIComponent;

type Camera = {
  id: string;
  paused: boolean;
  status: {
    phase?: string;
    worker?: string;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
  stats: StatsMessage | null;
};
type Pools = { pools: { status: { workers: { name: string; pid: number; restarts: number }[] } }[] };

const camera = (name: string) => ({
  apiVersion: "vigil.dev/v1alpha1",
  kind: "CameraDetection",
  metadata: { name },
  spec: { source: { url: `file://${VIDEO}` }, poolRef: { name: "local" }, detection: { targetFps: 5 } },
});

let up: UpProc;
let base: URL;
let token: string;

const call = (method: "GET" | "POST", path: string) =>
  fetch(new URL(`/api/v1${path}`, base), { method, headers: { authorization: `Bearer ${token}` } });
async function json<T>(method: "GET" | "POST", path: string, status = 200): Promise<T> {
  const r = await call(method, path);
  const body = await r.text();
  if (r.status !== status) throw new Error(`${method} ${path}: HTTP ${r.status} (expected ${status}): ${body}`);
  return JSON.parse(body) as T;
}
const cameraOf = (id: string) => json<Camera>("GET", `/cameras/${enc(id)}`);
/** The latest stats' timestamp (ms) of a camera, or 0 before any. */
async function statsAt(id: string): Promise<number> {
  const r = await call("GET", `/cameras/${enc(id)}/stats`);
  if (r.status !== 200) {
    await r.text();
    return 0;
  }
  return Date.parse(((await r.json()) as StatsMessage).timestamp);
}
const workerOf = async () => (await json<Pools>("GET", "/pools")).pools[0]!.status.workers[0]!;

beforeAll(async () => {
  const file = join(dir, "cameras.yaml");
  writeFileSync(
    file,
    [
      {
        apiVersion: "vigil.dev/v1alpha1",
        kind: "DetectorPool",
        metadata: { name: "local" },
        // Not on this host: the fixture YOLOv8n runs.
        spec: { model: { uri: "file:///nowhere/yolov8n.onnx" }, executionProviders: ["cpu"], camerasPerWorker: 4 },
      },
      camera("cam-a"),
      camera("cam-b"),
    ]
      .map((d) => stringify(d))
      .join("---\n"),
  );
  up = await startUp(file, { dataDir: join(dir, "data"), timeoutMs: 30_000 });
  base = new URL(up.base);
  token = up.token!;
}, 40_000);

afterAll(() => {
  if (up && up.proc.exitCode === null && up.proc.signalCode === null) up.proc.kill("SIGKILL");
});

describe("vigil up: POST /cameras/{id}/stop and /start", () => {
  it("the generated token is a write token named vigil-up", async () => {
    expect(await json("GET", "/me")).toEqual({ name: "vigil-up", scope: "write" });
  });

  it("stop pauses one camera in its running worker while the other streams; start resumes it within 5 s", {
    timeout: 120_000,
  }, async () => {
    await waitFor(
      "both cameras Running",
      async () => {
        const [a, b] = await Promise.all([cameraOf(A), cameraOf(B)]);
        return a.status.phase === "Running" && b.status.phase === "Running";
      },
      60_000,
      250,
    ).catch((err) => {
      throw new Error(`${err}\n${up.output().slice(-3000)}`);
    });
    const worker = await workerOf();
    expect(worker).toMatchObject({ name: "local-0", restarts: 0 });

    // Stop A: the answer already says Paused; its stats stop at once (the worker confirmed before the 202).
    const stopAt = Date.now();
    const stopped = await json<Camera>("POST", `/cameras/${enc(A)}/stop`, 202);
    const stopMs = Date.now() - stopAt;
    expect(stopped).toMatchObject({ id: A, paused: true, status: { phase: "Paused" } });
    expect(stopped.status.worker).toBeUndefined();
    expect(stopped.status.conditions).toContainEqual(
      expect.objectContaining({
        type: "Scheduled",
        status: "False",
        reason: "Paused",
        message: "stopped through the API by token vigil-up",
      }),
    );
    const aLast = await statsAt(A);
    const bBefore = await statsAt(B);
    // Stopping it again is no error and changes nothing.
    expect(await json<Camera>("POST", `/cameras/${enc(A)}/stop`, 202)).toMatchObject({ paused: true });
    await new Promise((r) => setTimeout(r, 3000));
    expect(await statsAt(A)).toBe(aLast);
    const bAfter = await statsAt(B);
    expect(bAfter - bBefore).toBeGreaterThanOrEqual(2000); // B kept reporting, once a second
    const b = await cameraOf(B);
    expect(b.status.phase).toBe("Running");
    expect(b.stats?.data.frames).toBeGreaterThan(0);
    expect((await cameraOf(A)).status.phase).toBe("Paused");
    const list = await json<{ cameras: Camera[] }>("GET", "/cameras");
    expect(list.cameras.find((c) => c.id === A)).toMatchObject({ paused: true, status: { phase: "Paused" } });
    // The same worker process: no restart.
    expect(await workerOf()).toMatchObject({ pid: worker.pid, restarts: 0 });

    // Start A: 202 at once, fresh stats from its new pipeline within 5 s, and Running again.
    const startAt = Date.now();
    const started = await json<Camera>("POST", `/cameras/${enc(A)}/start`, 202);
    expect(started.paused).toBe(false);
    expect(started.status.phase).not.toBe("Paused");
    expect(await json<Camera>("POST", `/cameras/${enc(A)}/start`, 202)).toMatchObject({ paused: false });
    await waitFor("fresh stats of A", async () => (await statsAt(A)) > startAt, 5000, 100);
    const freshMs = Date.now() - startAt;
    await waitFor("A Running again", async () => (await cameraOf(A)).status.phase === "Running", 5000, 100);
    const runningMs = Date.now() - startAt;
    const a = await cameraOf(A);
    expect(a).toMatchObject({ paused: false, status: { phase: "Running", worker: "local-0" } });
    expect(a.stats?.data.stream).toBe("streaming");
    expect(await workerOf()).toMatchObject({ pid: worker.pid, restarts: 0 });
    process.stdout.write(
      `[single-host-control] stop answered in ${stopMs} ms; start → fresh stats ${freshMs} ms, → Running ${runningMs} ms\n`,
    );
  });

  it("an unknown camera is a 404 of the usual shape", async () => {
    for (const action of ["stop", "start"]) {
      const r = await call("POST", `/cameras/${enc("default/nope")}/${action}`);
      expect(r.status).toBe(404);
      expect(await r.json()).toEqual({ error: "not_found", message: "no camera default/nope" });
    }
    const unauthorized = await fetch(new URL(`/api/v1/cameras/${enc(A)}/stop`, base), { method: "POST" });
    expect(unauthorized.status).toBe(401);
    await unauthorized.text();
    expect((await cameraOf(A)).paused).toBe(false);
  });

  it("a stopped camera stays stopped when its worker restarts, until vigil up exits", { timeout: 90_000 }, async () => {
    await json("POST", `/cameras/${enc(A)}/stop`, 202);
    const before = await workerOf();
    process.kill(before.pid, "SIGKILL");
    const killedAt = Date.now();
    await waitFor("the worker restarted", async () => (await workerOf()).restarts === 1, 15_000, 200);
    await waitFor("B streaming from the new worker", async () => (await statsAt(B)) > killedAt + 1000, 60_000, 250);
    const after = await workerOf();
    expect(after.pid).not.toBe(before.pid);
    await new Promise((r) => setTimeout(r, 2000));
    expect(await statsAt(A)).toBeLessThan(killedAt); // none from the new worker
    expect((await cameraOf(A)).status.phase).toBe("Paused");
    expect((await cameraOf(B)).status.phase).toBe("Running");
    // And it can be started in the new worker.
    const startAt = Date.now();
    await json("POST", `/cameras/${enc(A)}/start`, 202);
    await waitFor("fresh stats of A from the new worker", async () => (await statsAt(A)) > startAt, 5000, 100);

    up.proc.kill("SIGTERM");
    expect((await up.exited).code).toBe(0);
    expect(() => process.kill(after.pid, 0)).toThrow();
    expect(up.stderr()).not.toContain(token);
    expect(up.stdout()).toContain('"msg":"camera stopped through the API"');
    expect(up.stdout()).toMatch(/"camera":"default\/cam-a","actor":"vigil-up"/);
  });
});
