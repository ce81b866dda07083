// The dashboard's risk assessments in a real browser (Debian's Chromium driven by playwright-core) against a real
// gateway over a real Redis. The test stands in for the worker and the assessor: it publishes rule events on the
// bus (hbd:events) and writes assessment results the way the assessor does (HSET latest, LPUSH/LTRIM recent lists,
// PUBLISH). The API answers them; the page shows each one's risk, labels and reason inside the row of the event that
// caused it, both for results stored before the page opened and for those that arrive live, and a sample-triggered
// one in its camera's detail.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildGateway } from "../../gateway/app.ts";
import type { AssessmentSource } from "../../gateway/assessments.ts";
import { createRedisAssessments } from "../../gateway/assessments-redis.ts";
import { memoryCatalog } from "../../gateway/catalog-static.ts";
import type { BusFeed } from "../../gateway/feed.ts";
import { createRedisFeed } from "../../gateway/redis-feed.ts";
import { CHANNELS, type EventMessage, eventMessage } from "../../worker/publish/messages.ts";
import { bareSummary } from "../setup/alarm-media.ts";
import { resultFixture, storeResult } from "../setup/assessment-results.ts";
import { launchChromium } from "../setup/browser.ts";
import { metricValue, ROOT } from "../setup/operator-env.ts";
import { type Service, startRedis, waitFor } from "../setup/services.ts";

const TOKEN = "dashboard-assessments-token-0123456789";
const ARTIFACTS = join(ROOT, ".cache", "artifacts");
const T0 = Date.now() - 30_000;

let redis: Service;
let client: Redis;
let feed: BusFeed;
let source: AssessmentSource;
let app: FastifyInstance;
let base: string;
let browser: Browser;
let context: BrowserContext;

function event(camera: string, rule: string, track: number, ms: number): EventMessage {
  return eventMessage.parse({
    v: 2,
    type: "event",
    id: `${camera}:${rule}:${track}:${ms}`,
    camera_id: camera,
    timestamp: new Date(ms).toISOString(),
    rule,
    kind: "dwell",
    severity: "warning",
    track_id: track,
    zone: "floor",
    box: [10, 20, 110, 220],
    snapshot_key: null,
    detail: `person ${track} stayed in floor`,
  });
}
/** The gateway's open assessment WebSockets (the gateway's own Redis subscription is there from its start). */
const assessmentSockets = async () => {
  const m = await app.inject({ url: "/metrics", headers: { authorization: `Bearer ${TOKEN}` } });
  return metricValue(m.body, "vigil_gateway_ws_clients", 'stream="assessments"');
};
const publishEvent = (e: EventMessage) => client.publish(CHANNELS.events, JSON.stringify(e));

const EARLY = event("default/lobby", "loitering", 3, T0);
const EARLY_RESULT = resultFixture({
  camera: "default/lobby",
  risk: 3,
  eventId: EARLY.id,
  rule: "loitering",
  labels: ["loitering", "after-hours"],
  reason: "a person waits at the locked door after closing",
  completedMs: T0 + 900,
});

/** The assessment block inside the event row of `eventId` in one of the page's lists. */
const inRow = (page: Page, list: string, eventId: string) =>
  page.getByTestId(list).locator(`li[data-id="${eventId}"]`).getByTestId("event-assessment");

beforeAll(async () => {
  redis = await startRedis();
  const url = `redis://127.0.0.1:${redis.port}`;
  client = new Redis(url);
  const registry = new Registry();
  feed = createRedisFeed(url, { registry });
  source = createRedisAssessments(url, { registry });
  app = buildGateway({
    feed,
    catalog: memoryCatalog(["default/lobby", "default/corridor"].map(bareSummary)),
    tokens: [TOKEN],
    registry,
    closeGraceMs: 300,
    assessments: source,
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  await waitFor(
    "the gateway subscribed to events and assessments",
    async () => {
      const n = (await client.pubsub("NUMSUB", CHANNELS.events, "vigil:assessments")) as (string | number)[];
      return n[1] === 1 && n[3] === 1;
    },
    10_000,
  );
  // Before the page opens: an event in the gateway's cache, and its assessment stored.
  await publishEvent(EARLY);
  await waitFor("the early event cached", async () => {
    const r = await fetch(`${base}/api/v1/events`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return ((await r.json()) as { events: EventMessage[] }).events.some((e) => e.id === EARLY.id);
  });
  await storeResult(client, EARLY_RESULT);
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
}, 60_000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  await browser?.close();
  await app?.close();
  await source?.close();
  await feed?.close();
  client?.disconnect();
  await redis?.stop();
});

describe("the dashboard's assessments", () => {
  it("the API answers what the assessor stored", async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const list = await fetch(`${base}/api/v1/assessments`, { headers: auth });
    expect(list.status).toBe(200);
    expect(await list.json()).toEqual({ assessments: [EARLY_RESULT] });
    const cam = await fetch(`${base}/api/v1/cameras/${encodeURIComponent("default/lobby")}/assessments`, {
      headers: auth,
    });
    expect(await cam.json()).toEqual({ camera: "default/lobby", latest: EARLY_RESULT, assessments: [EARLY_RESULT] });
  });

  it("shows each assessment beside its event, stored or live, and a sample in its camera's detail", async () => {
    const page = await context.newPage();
    const failed: string[] = [];
    page.on("response", (r) => {
      if (new URL(r.url()).pathname.startsWith("/api/") && r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
    });
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    await page.goto(`${base}/?access_token=${TOKEN}`);

    // Stored before the page opened: in the early event's row, with its risk (coloured), labels and reason.
    const early = inRow(page, "event-feed", EARLY.id);
    await early.waitFor({ timeout: 15_000 });
    expect(await early.getAttribute("data-risk")).toBe("3");
    expect(await early.getByTestId("assessment-risk").textContent()).toBe("risk 3");
    expect(await early.getByTestId("assessment-reason").textContent()).toBe(
      "a person waits at the locked door after closing",
    );
    expect(await early.getByTestId("assessment-labels").textContent()).toContain("after-hours");
    const colour = await early
      .getByTestId("assessment-risk")
      .evaluate((e: any) => (globalThis as any).getComputedStyle(e).backgroundColor);
    expect(colour).toBe("rgb(248, 81, 73)"); // --bad

    // Live: an event, then its (low-risk) assessment while the page is open; the socket must be connected first.
    await waitFor("the page's assessment socket", async () => {
      return (await assessmentSockets()) === 1 && (await page.getByTestId("event-row").count()) >= 1;
    });
    const now = Date.now();
    const live = event("default/corridor", "loitering", 8, now);
    await publishEvent(live);
    const liveRow = page.getByTestId("event-feed").locator(`li[data-id="${live.id}"]`);
    await liveRow.waitFor({ timeout: 10_000 });
    expect(await liveRow.getByTestId("event-assessment").count()).toBe(0);
    const liveResult = resultFixture({
      camera: "default/corridor",
      risk: 1,
      eventId: live.id,
      rule: "loitering",
      labels: ["waiting"],
      reason: "someone waits for the lift",
      completedMs: now + 700,
    });
    await storeResult(client, liveResult);
    const liveBlock = inRow(page, "event-feed", live.id);
    await liveBlock.waitFor({ timeout: 10_000 });
    expect(await liveBlock.getAttribute("data-risk")).toBe("1");
    expect(await liveBlock.getByTestId("assessment-reason").textContent()).toBe("someone waits for the lift");
    expect(
      await liveBlock
        .getByTestId("assessment-risk")
        .evaluate((e: any) => (globalThis as any).getComputedStyle(e).backgroundColor),
    ).toBe("rgb(88, 166, 255)"); // --info
    // The early event's answer stayed where it was.
    expect(await inRow(page, "event-feed", EARLY.id).getByTestId("assessment-reason").textContent()).toContain(
      "locked door",
    );
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-assessments-feed.png") });

    // A camera's detail: its events with their answers, the latest assessment, and a periodic sample, live.
    await page.goto(`${base}/?access_token=${TOKEN}#/camera/${encodeURIComponent("default/lobby")}`);
    const detail = page.getByTestId("camera-detail");
    await detail.waitFor({ state: "visible" });
    const inDetail = inRow(page, "detail-events", EARLY.id);
    await inDetail.waitFor({ timeout: 10_000 });
    expect(await inDetail.getByTestId("assessment-reason").textContent()).toContain("locked door");
    const items = page.getByTestId("detail-assessments").getByTestId("detail-assessment");
    await waitFor("the stored one in the camera's list", async () => (await items.count()) === 1);
    expect(await items.first().getByTestId("assessment-trigger").textContent()).toBe("loitering");
    await waitFor("the page's assessment socket", async () => (await assessmentSockets()) === 1);
    const sample = resultFixture({
      camera: "default/lobby",
      risk: 2,
      labels: ["crowd"],
      reason: "a group gathers near the exit",
      completedMs: Date.now(),
    });
    await storeResult(client, sample);
    await waitFor("the sample in the camera's list", async () => (await items.count()) === 2, 10_000);
    const first = items.first();
    expect(await first.getAttribute("data-id")).toBe(sample.id);
    expect(await first.getByTestId("assessment-trigger").textContent()).toBe("periodic sample");
    expect(await first.getByTestId("assessment-risk").textContent()).toBe("risk 2");
    expect(await first.getByTestId("assessment-reason").textContent()).toBe("a group gathers near the exit");
    const latest = page.getByTestId("detail-assessment-latest");
    expect(await latest.getAttribute("data-id")).toBe(sample.id);
    // A corridor result is not the lobby's.
    expect(await page.getByTestId("detail-assessments").locator(`li[data-id="${liveResult.id}"]`).count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-assessments-detail.png") });

    expect(pageErrors).toEqual([]);
    expect(failed).toEqual([]);
  });
});
