// The dashboard's start/stop controls in a real browser (Debian's Chromium driven by playwright-core) against a real
// `vigil up`: two cameras on one real worker (YOLOv8n on vtest.avi, the IPC bus), VIGIL_API_TOKEN with a write token
// and an old plain one (read-only). With the write token, clicking stop on a card pauses that camera (the card reads
// Paused, its stats stop) and start resumes it, the same on the camera page, all without a reload; the read token's
// page shows no control, and its POST is a 403 naming the missing scope.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { StatsMessage } from "../../worker/publish/messages.ts";
import { launchChromium } from "../setup/browser.ts";
import { ROOT } from "../setup/operator-env.ts";
import { FIXTURES, waitFor } from "../setup/services.ts";
import { startUp, type UpProc } from "../setup/vigil-up.ts";

const VIDEO = join(FIXTURES, "vtest.avi");
const ARTIFACTS = join(ROOT, ".cache", "artifacts");
const dir = mkdtempSync(join(tmpdir(), "vigil-dashboard-control-"));
const WRITE = "dashboard-control-write-0123456789";
const READ = "dashboard-control-read-0123456789";
const A = "default/cam-a";
const B = "default/cam-b";
const enc = encodeURIComponent;

const camera = (name: string) => ({
  apiVersion: "vigil.dev/v1alpha1",
  kind: "CameraDetection",
  metadata: { name },
  spec: { source: { url: `file://${VIDEO}` }, poolRef: { name: "local" }, detection: { targetFps: 5 } },
});

let up: UpProc;
let base: string;
let browser: Browser;

const api = (path: string, token = WRITE, method = "GET") =>
  fetch(`${base}/api/v1${path}`, { method, headers: { authorization: `Bearer ${token}` } });
async function statsAt(id: string): Promise<number> {
  const r = await api(`/cameras/${enc(id)}/stats`);
  if (r.status !== 200) {
    await r.text();
    return 0;
  }
  return Date.parse(((await r.json()) as StatsMessage).timestamp);
}
const pausedOf = async (id: string) =>
  ((await (await api(`/cameras/${enc(id)}`)).json()) as { paused: boolean }).paused;

const tile = (page: Page, id: string) => page.locator(`[data-testid="camera-tile"][data-camera="${id}"]`);
const cardPhase = (page: Page, id: string) => tile(page, id).getByTestId("camera-phase");

beforeAll(async () => {
  const file = join(dir, "cameras.yaml");
  writeFileSync(
    file,
    [
      {
        apiVersion: "vigil.dev/v1alpha1",
        kind: "DetectorPool",
        metadata: { name: "local" },
        spec: { model: { uri: "file:///nowhere/yolov8n.onnx" }, executionProviders: ["cpu"], camerasPerWorker: 4 },
      },
      camera("cam-a"),
      camera("cam-b"),
    ]
      .map((d) => stringify(d))
      .join("---\n"),
  );
  // A named write token, and the old plain form: read-only.
  up = await startUp(file, { dataDir: join(dir, "data"), env: { VIGIL_API_TOKEN: `ops:${WRITE}:write,${READ}` } });
  base = up.base;
  await waitFor(
    "both cameras Running",
    async () => {
      const { cameras } = (await (await api("/cameras")).json()) as { cameras: { status: { phase?: string } }[] };
      return cameras.length === 2 && cameras.every((c) => c.status.phase === "Running");
    },
    60_000,
    250,
  ).catch((err) => {
    throw new Error(`${err}\n${up.output().slice(-3000)}`);
  });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await up?.stop();
});

describe("dashboard start/stop", () => {
  it("the tokens' scopes: ops writes, the plain one reads", async () => {
    expect(await (await api("/me")).json()).toEqual({ name: "ops", scope: "write" });
    expect(await (await api("/me", READ)).json()).toEqual({ name: "token-2", scope: "read" });
  });

  it("stop on a card pauses the camera and start resumes it, without a reload", { timeout: 90_000 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${base}/?access_token=${WRITE}`);
    await expect.poll(() => cardPhase(page, A).textContent(), { timeout: 15_000 }).toBe("Running");
    await expect.poll(() => cardPhase(page, B).textContent(), { timeout: 15_000 }).toBe("Running");
    // A mark that a reload would wipe.
    await page.evaluate(() => {
      (globalThis as { vigilMark?: number }).vigilMark = 42;
    });
    const control = tile(page, A).getByTestId("camera-control");
    await control.waitFor({ state: "visible", timeout: 10_000 });
    expect(await control.textContent()).toBe("■ Stop");
    expect(await tile(page, B).getByTestId("camera-control").isVisible()).toBe(true);

    const stopAt = Date.now();
    await control.click();
    await expect.poll(() => cardPhase(page, A).textContent(), { timeout: 5000, interval: 50 }).toBe("Paused");
    const pausedMs = Date.now() - stopAt;
    expect(await cardPhase(page, A).getAttribute("data-state")).toBe("wait");
    // Its last stats are of the run before: not shown as current.
    expect(await tile(page, A).getByTestId("camera-fps").textContent()).toBe("—");
    await expect.poll(() => control.textContent(), { timeout: 5000 }).toBe("▶ Start");
    expect(await pausedOf(A)).toBe(true);
    const aLast = await statsAt(A);
    const bBefore = await statsAt(B);
    await new Promise((r) => setTimeout(r, 2500));
    expect(await statsAt(A)).toBe(aLast);
    expect((await statsAt(B)) - bBefore).toBeGreaterThanOrEqual(1000);
    expect(await cardPhase(page, A).textContent()).toBe("Paused");
    expect(await cardPhase(page, B).textContent()).toBe("Running");
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-control-paused.png") });

    const startAt = Date.now();
    await control.click();
    await expect.poll(() => cardPhase(page, A).textContent(), { timeout: 10_000, interval: 50 }).toBe("Running");
    const runningMs = Date.now() - startAt;
    expect(await control.textContent()).toBe("■ Stop");
    expect(await pausedOf(A)).toBe(false);
    expect(await statsAt(A)).toBeGreaterThan(startAt);
    expect(await page.evaluate(() => (globalThis as { vigilMark?: number }).vigilMark)).toBe(42);
    process.stdout.write(
      `[dashboard-control] card: click stop → Paused ${pausedMs} ms, start → Running ${runningMs} ms\n`,
    );
    await page.close();
  });

  it("the camera page has the same control", { timeout: 60_000 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${base}/?access_token=${WRITE}#/camera/${enc(B)}`);
    const phase = page.locator("#detail-phase");
    const control = page.getByTestId("detail-control");
    await expect.poll(() => phase.textContent(), { timeout: 15_000 }).toBe("Running");
    await control.waitFor({ state: "visible", timeout: 10_000 });
    expect(await control.textContent()).toBe("■ Stop");
    await control.click();
    await expect.poll(() => phase.textContent(), { timeout: 5000, interval: 50 }).toBe("Paused");
    await expect.poll(() => control.textContent(), { timeout: 5000 }).toBe("▶ Start");
    expect(await pausedOf(B)).toBe(true);
    const startAt = Date.now();
    await control.click();
    await expect.poll(() => phase.textContent(), { timeout: 10_000, interval: 50 }).toBe("Running");
    expect(await pausedOf(B)).toBe(false);
    expect(await statsAt(B)).toBeGreaterThan(startAt);
    await page.close();
  });

  it("a read token's page shows no control, and its POST is a 403 naming the scope", { timeout: 60_000 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const me = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/v1/me");
    await page.goto(`${base}/?access_token=${READ}`);
    expect((await me).status()).toBe(200);
    await expect.poll(() => cardPhase(page, A).textContent(), { timeout: 15_000 }).toBe("Running");
    await expect.poll(() => page.locator('[data-testid="camera-tile"]').count()).toBe(2);
    // The cards are there (and refreshed since /me answered), the controls are not shown.
    await page.waitForTimeout(1500);
    expect(await page.getByTestId("camera-control").count()).toBe(2);
    for (const c of await page.getByTestId("camera-control").all()) expect(await c.isVisible()).toBe(false);
    await page.goto(`${base}/?access_token=${READ}#/camera/${enc(A)}`);
    await page.reload();
    await expect.poll(() => page.locator("#detail-phase").textContent(), { timeout: 15_000 }).toBe("Running");
    expect(await page.getByTestId("detail-control").isVisible()).toBe(false);
    await page.close();

    const r = await api(`/cameras/${enc(A)}/stop`, READ, "POST");
    expect(r.status).toBe(403);
    expect(await r.json()).toEqual({
      error: "forbidden",
      message: "POST /api/v1/cameras/{id}/stop needs a token with the write scope; token token-2 has read",
    });
    expect(await pausedOf(A)).toBe(false);
  });
});
