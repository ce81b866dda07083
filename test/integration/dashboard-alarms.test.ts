// The dashboard's alarms view in a real browser (Debian's Chromium driven by playwright-core) against a real
// gateway: alarm records in node:sqlite written through the records API, and a clip store holding an H.264 MP4
// cut from vtest.avi with ffmpeg and a JPEG of one frame. The list shows the alarm with its snapshot and delivery
// state; its page plays the clip (readyState ≥ HAVE_CURRENT_DATA, duration as ffprobe reads it) and seeks, which
// the gateway serves as range requests; a new alarm appears live.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Browser, BrowserContext } from "playwright-core";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFsClipStore } from "../../alarms/clips/fs-store.ts";
import type { ClipStore } from "../../alarms/clips/store.ts";
import type { AlarmMessage } from "../../alarms/messages.ts";
import type { AlarmRecords } from "../../alarms/records.ts";
import { openRecords } from "../../alarms/records-open.ts";
import { buildGateway } from "../../gateway/app.ts";
import { memoryCatalog } from "../../gateway/catalog-static.ts";
import { createIpcFeed } from "../../gateway/ipc-feed.ts";
import { alarmAt, bareSummary, cutClip, probeDuration, snapshotJpeg } from "../setup/alarm-media.ts";
import { launchChromium } from "../setup/browser.ts";
import { ROOT } from "../setup/operator-env.ts";
import { waitFor } from "../setup/services.ts";

const TOKEN = "dashboard-alarms-token-0123456789";
const ARTIFACTS = join(ROOT, ".cache", "artifacts");
const tmp = mkdtempSync(join(tmpdir(), "vigil-dashboard-alarms-"));
const T0 = Date.now() - 120_000;

let records: AlarmRecords;
let clips: ClipStore;
let jpeg: Buffer;
let app: FastifyInstance;
let base: string;
let browser: Browser;
let context: BrowserContext;
let clipSeconds: number;
/** Every request the gateway answered for a clip: its Range header and status. */
const clipRequests: { range: string | undefined; status: number }[] = [];

const summary = bareSummary;

const msg = (camera: string, rule: string, severity: AlarmMessage["severity"], t: number) =>
  alarmAt({ camera, rule, severity, t, pre: 3, post: 5 });

const DONE = msg("default/lobby", "entered", "critical", T0);
const WAITING = msg("default/corridor", "loitering", "warning", T0 + 5000);

beforeAll(async () => {
  // ~6 MB: Chromium fetches the start for the metadata (preload="metadata"), and a seek near the end is its own
  // range request.
  const clip = cutClip(join(tmp, "clip.mp4"), 20, 12, "4M");
  clipSeconds = probeDuration(clip);
  jpeg = readFileSync(snapshotJpeg(join(tmp, "snap.jpg"), 22));
  records = openRecords(`sqlite:${join(tmp, "alarms.db")}`);
  await records.migrate();
  clips = createFsClipStore(join(tmp, "clips"));
  await records.admit(DONE, T0 + 30);
  await records.admit(WAITING, T0 + 5030);
  await clips.put(DONE.clip.key, { bytes: readFileSync(clip) }, "video/mp4");
  for (const m of [DONE, WAITING]) await clips.put(m.snapshot_key as string, { bytes: jpeg }, "image/jpeg");
  const raised = await records.startAttempt({
    alarm_id: DONE.id,
    type: "alarm.raised",
    webhook_id: `${DONE.id}.alarm.raised`,
    started_ms: T0 + 100,
  });
  await records.finishAttempt(raised, { finished_ms: T0 + 120, status_code: 200, latency_ms: 20, error: null });
  await records.markStep(DONE.id, "raised_delivered", T0 + 120);
  await records.markStep(DONE.id, "clip_ready", T0 + 6000);
  const sent = await records.startAttempt({
    alarm_id: DONE.id,
    type: "alarm.clip",
    webhook_id: `${DONE.id}.alarm.clip`,
    started_ms: T0 + 6100,
  });
  await records.finishAttempt(sent, { finished_ms: T0 + 6130, status_code: 204, latency_ms: 30, error: null });
  await records.markStep(DONE.id, "clip_delivered", T0 + 6130);
  await records.markStep(DONE.id, "completed", T0 + 6140);

  app = buildGateway({
    feed: createIpcFeed(),
    catalog: memoryCatalog(["default/lobby", "default/corridor"].map(summary)),
    tokens: [TOKEN],
    registry: new Registry(),
    closeGraceMs: 300,
    alarms: { records, clips, pollMs: 250 },
  });
  app.addHook("onResponse", async (req, reply) => {
    if (req.url.split("?")[0]?.endsWith("/clip"))
      clipRequests.push({ range: req.headers.range, status: reply.statusCode });
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
}, 60_000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await browser?.close();
  await app?.close();
  await records?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe("the dashboard's alarms", () => {
  it("lists alarms with snapshot and delivery state, plays and seeks the clip, and shows new ones live", async () => {
    const page = await context.newPage();
    const failed: string[] = [];
    page.on("response", (r) => {
      if (new URL(r.url()).pathname.startsWith("/api/") && r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
    });
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    await page.goto(`${base}/?access_token=${TOKEN}#/alarms`);

    const rows = page.getByTestId("alarm-list").getByTestId("alarm-row");
    await waitFor("two alarm rows", async () => (await rows.count()) === 2, 15_000);
    // Newest first.
    expect(await rows.evaluateAll((els: any[]) => els.map((e) => e.dataset.id))).toEqual([WAITING.id, DONE.id]);
    const done = rows.filter({ hasText: "default/lobby" });
    expect(await done.getByTestId("alarm-severity").textContent()).toBe("critical");
    expect(await done.getByTestId("alarm-camera").textContent()).toBe("default/lobby");
    expect(await done.getByTestId("alarm-time").getAttribute("datetime")).toBe(DONE.timestamp);
    expect(await done.getByTestId("alarm-status").textContent()).toBe("delivered");
    expect(await done.getByTestId("delivery-raised").getAttribute("data-state")).toBe("delivered");
    expect(await done.getByTestId("delivery-clip").getAttribute("data-state")).toBe("delivered");
    const waiting = rows.filter({ hasText: "default/corridor" });
    expect(await waiting.getByTestId("delivery-raised").getAttribute("data-state")).toBe("pending");
    // The snapshot thumbnails decoded (the <img> fetched them with the token in their URL).
    await page.waitForFunction(
      () =>
        [...(globalThis as any).document.querySelectorAll('[data-testid="alarm-thumb"]')].length === 2 &&
        [...(globalThis as any).document.querySelectorAll('[data-testid="alarm-thumb"]')].every(
          (i: any) => i.complete && i.naturalWidth === 768,
        ),
      undefined,
      { timeout: 15_000 },
    );
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-alarms.png") });

    // Its page: the clip plays in the <video>, with the duration ffprobe reads.
    await done.getByRole("link").click();
    const detail = page.getByTestId("alarm-detail");
    await detail.waitFor({ state: "visible" });
    expect(decodeURIComponent(new URL(page.url()).hash)).toBe(`#/alarm/${DONE.id}`);
    // Its detail line (an assessment alarm's is the model's risk and reason).
    expect(await detail.locator('[data-fact="detail"]').textContent()).toBe(DONE.detail);
    const video = page.getByTestId("alarm-clip");
    await page.waitForFunction(
      () => ((globalThis as any).document.querySelector('[data-testid="alarm-clip"]')?.readyState ?? 0) >= 2,
      undefined,
      { timeout: 20_000 },
    );
    const played = await video.evaluate((v: any) => ({
      readyState: v.readyState,
      duration: v.duration,
      width: v.videoWidth,
    }));
    expect(played.readyState).toBeGreaterThanOrEqual(2);
    expect(played.width).toBe(768);
    expect(Math.abs(played.duration - clipSeconds)).toBeLessThanOrEqual(0.1);

    // Seeking near the end: the browser asks for that part with a range request, and the frame there decodes.
    const target = clipSeconds - 1.5;
    const seeked = await video.evaluate(
      (v: any, t: number) =>
        new Promise<{ currentTime: number; readyState: number }>((resolve) => {
          v.addEventListener("seeked", () => resolve({ currentTime: v.currentTime, readyState: v.readyState }), {
            once: true,
          });
          v.currentTime = t;
        }),
      target,
    );
    expect(Math.abs(seeked.currentTime - target)).toBeLessThan(0.2);
    await page.waitForFunction(
      () => ((globalThis as any).document.querySelector('[data-testid="alarm-clip"]')?.readyState ?? 0) >= 2,
      undefined,
      { timeout: 10_000 },
    );
    // And it plays from there (muted: autoplay rules allow it).
    await video.evaluate((v: any) => v.play());
    await page.waitForFunction(
      (t: number) => (globalThis as any).document.querySelector('[data-testid="alarm-clip"]').currentTime > t + 0.3,
      target,
      { timeout: 10_000 },
    );
    expect(clipRequests.length).toBeGreaterThan(0);
    expect(clipRequests.every((r) => r.range !== undefined && r.status === 206)).toBe(true);
    // The seek was served from the middle of the file, not from a download of the whole.
    expect(clipRequests.some((r) => Number(/^bytes=(\d+)-/.exec(r.range ?? "")?.[1]) > 0)).toBe(true);

    // The snapshot, the facts and every delivery attempt.
    await page.waitForFunction(
      () => (globalThis as any).document.querySelector('[data-testid="alarm-snapshot"]').naturalWidth > 0,
    );
    const attempts = detail.getByTestId("alarm-attempts").getByTestId("attempt-row");
    await waitFor("two attempts", async () => (await attempts.count()) === 2, 10_000);
    expect(await attempts.evaluateAll((els: any[]) => els.map((e) => e.dataset.type))).toEqual([
      "alarm.raised",
      "alarm.clip",
    ]);
    expect(await detail.getByTestId("alarm-deliveries").getByTestId("delivery-clip").getAttribute("data-state")).toBe(
      "delivered",
    );
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-alarm.png") });

    // A new alarm is admitted: back on the list, it is there without a reload.
    const fresh = msg("default/lobby", "entered", "info", Date.now());
    await clips.put(fresh.snapshot_key as string, { bytes: jpeg }, "image/jpeg");
    await records.admit(fresh, Date.now());
    await page.getByRole("button", { name: "← All alarms" }).click();
    await waitFor("the new alarm's row", async () => (await rows.count()) === 3, 15_000);
    expect(await rows.first().getAttribute("data-id")).toBe(fresh.id);
    await records.markStep(fresh.id, "raised_delivered", Date.now());
    await waitFor(
      "its raised delivery, live",
      async () => (await rows.first().getByTestId("delivery-raised").getAttribute("data-state")) === "delivered",
      15_000,
    );

    expect(failed).toEqual([]);
    expect(pageErrors).toEqual([]);
    console.log(
      `[dashboard-alarms] clip ffprobe ${clipSeconds.toFixed(3)} s, <video> duration ${played.duration.toFixed(3)} s, seek to ${target.toFixed(2)} s landed at ${seeked.currentTime.toFixed(3)} s; clip requests ${JSON.stringify(clipRequests)}`,
    );
  });
});
