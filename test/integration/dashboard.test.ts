// The dashboard in a real browser (Debian's Chromium driven by playwright-core) against a real gateway fed by a real
// worker: vtest.avi served over RTSP, the real YOLOv8n model, Redis between them, the gateway's catalog read from
// the same manifest file. The page must show live video, stats and rule events, draw a camera's zones over its
// video in the detail view, and without a valid token show why and make no successful API call.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { buildGateway } from "../../gateway/app.ts";
import { createStaticCatalog } from "../../gateway/catalog-static.ts";
import type { BusFeed } from "../../gateway/feed.ts";
import { createRedisFeed } from "../../gateway/redis-feed.ts";
import { launchChromium } from "../setup/browser.ts";
import { metricValue, ROOT } from "../setup/operator-env.ts";
import { FIXTURES, type Service, startRedis, startRtsp, startWorker, waitFor } from "../setup/services.ts";

const VIDEO = join(FIXTURES, "vtest.avi");
const TOKEN = "dashboard-test-token-0123456789";
const ARTIFACTS = join(ROOT, ".cache", "artifacts");
const VIEWPORT = { width: 1440, height: 900 };
const LOBBY_ZONE = [
  [0.05, 0.4],
  [0.95, 0.4],
  [0.95, 0.97],
  [0.05, 0.97],
];

let redis: Service;
let rtsp: Service;
let worker: ChildProcess;
let workerExited: Promise<void>;
const workerLogs: string[] = [];
let feed: BusFeed;
let registry: Registry;
let app: FastifyInstance;
let base: string;
let browser: Browser;
const contexts: BrowserContext[] = [];

async function openPage(path: string): Promise<{ page: Page; api: { url: string; status: number }[] }> {
  const context = await browser.newContext({ viewport: VIEWPORT });
  contexts.push(context);
  const page = await context.newPage();
  const api: { url: string; status: number }[] = [];
  page.on("response", (r) => {
    if (new URL(r.url()).pathname.startsWith("/api/")) api.push({ url: r.url(), status: r.status() });
  });
  await page.goto(`${base}${path}`);
  return { page, api };
}

const videoClients = async () =>
  metricValue(
    await app.inject({ url: "/metrics", headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.body),
    "vigil_gateway_http_stream_clients",
    'stream="video"',
  );

beforeAll(async () => {
  redis = await startRedis();
  rtsp = await startRtsp(VIDEO);
  const camera = (name: string, zone: number[][], rules: Record<string, unknown>[]) => ({
    apiVersion: "vigil.dev/v1alpha1",
    kind: "CameraDetection",
    metadata: { name },
    spec: {
      source: { url: `rtsp://127.0.0.1:${rtsp.port}/cam1` },
      poolRef: { name: "local" },
      detection: { targetFps: 5 },
      zones: [{ name: "floor", polygon: zone }],
      rules,
    },
  });
  const file = join(tmpdir(), `vigil-dashboard-${process.pid}.yaml`);
  writeFileSync(
    file,
    [
      camera("lobby", LOBBY_ZONE, [
        { name: "entered", severity: "info", cooldownSeconds: 600, presence: { zone: "floor" } },
        { name: "loitering", severity: "warning", cooldownSeconds: 600, dwell: { zone: "floor", seconds: 1 } },
      ]),
      camera(
        "corridor",
        [
          [0, 0],
          [0.5, 0],
          [0.5, 1],
          [0, 1],
        ],
        [{ name: "left-half", severity: "critical", cooldownSeconds: 600, presence: { zone: "floor" } }],
      ),
    ]
      .map((d) => stringify(d))
      .join("---\n"),
  );
  ({ proc: worker } = await startWorker(["--cameras", file], redis.port, {}, workerLogs));
  workerExited = new Promise((r) => worker.once("exit", () => r()));

  registry = new Registry();
  feed = createRedisFeed(`redis://127.0.0.1:${redis.port}`, { registry });
  app = buildGateway({ feed, catalog: createStaticCatalog(file), tokens: [TOKEN], registry, closeGraceMs: 500 });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;

  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await app?.close();
  await feed?.close();
  if (worker && worker.exitCode === null && worker.signalCode === null) {
    worker.kill("SIGTERM");
    const killed = setTimeout(() => worker.kill("SIGKILL"), 10_000);
    await workerExited;
    clearTimeout(killed);
  }
  await rtsp?.stop("SIGKILL");
  await redis?.stop();
});

describe("dashboard", () => {
  it("serves the page and its assets without a token; the API still needs one", async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    const html = await page.text();
    expect(html).toContain('src="/dashboard/app.js"');
    const etag = page.headers.get("etag")!;
    expect((await fetch(`${base}/`, { headers: { "if-none-match": etag } })).status).toBe(304);
    for (const [path, type] of [
      ["/dashboard/app.js", /^text\/javascript/],
      ["/dashboard/style.css", /^text\/css/],
    ] as const) {
      const r = await fetch(`${base}${path}`);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toMatch(type);
      expect((await r.text()).length).toBeGreaterThan(100);
    }
    // Only those exact paths are open.
    const other = await fetch(`${base}/dashboard/other.js`);
    expect(other.status).toBe(401);
    await other.text();
    const api = await fetch(`${base}/api/v1/cameras`);
    expect(api.status).toBe(401);
    await api.text();
  });

  it("without a token shows how to add one and makes no API call", async () => {
    const { page, api } = await openPage("/");
    const hint = page.getByTestId("token-hint");
    await hint.waitFor({ state: "visible" });
    expect(await hint.textContent()).toContain("?access_token=");
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-no-token.png") });
    await page.waitForTimeout(1500);
    expect(await page.getByTestId("camera-grid").isVisible()).toBe(false);
    expect(api.filter((r) => r.status < 400)).toEqual([]);
  });

  it("with a token the gateway rejects says so and shows no data", async () => {
    const { page, api } = await openPage("/?access_token=not-the-token");
    const fatal = page.getByTestId("fatal");
    await fatal.waitFor({ state: "visible" });
    expect(await fatal.textContent()).toContain("did not accept this access token");
    expect(await page.getByTestId("camera-grid").isVisible()).toBe(false);
    expect(api.length).toBeGreaterThan(0);
    expect(api.filter((r) => r.status < 400)).toEqual([]);
  });

  it("shows live video, stats and events, and a camera's zones over its video", { timeout: 120_000 }, async () => {
    const { page, api } = await openPage(`/?access_token=${TOKEN}`);
    const tiles = page.getByTestId("camera-tile");
    await waitFor("two camera tiles", async () => (await tiles.count()) === 2, 10_000);
    expect(await tiles.getByTestId("camera-name").allTextContents()).toEqual(["corridor", "lobby"]);
    expect(await tiles.getByTestId("camera-namespace").allTextContents()).toEqual(["default", "default"]);

    // Each tile: a decoded frame from the MJPEG stream, and live stats. (Predicates are functions, not strings: the
    // page's Content-Security-Policy forbids evaluating strings, and the test runs under it. No DOM types here.)
    await page
      .waitForFunction(
        () =>
          [...(globalThis as any).document.querySelectorAll('[data-testid="camera-tile"]')].every(
            (t: any) =>
              t.querySelector('[data-testid="camera-video"]').naturalWidth > 0 &&
              Number.parseFloat(t.querySelector('[data-testid="camera-fps"]').textContent) > 0,
          ),
        undefined,
        { timeout: 60_000, polling: 250 },
      )
      .catch((err) => {
        throw new Error(`${err}\nworker: ${workerLogs.join("").slice(-3000)}`);
      });
    const lobby = tiles.filter({ hasText: "lobby" });
    expect(await lobby.getByTestId("camera-video").getAttribute("src")).toMatch(
      /\/api\/v1\/cameras\/default%2Flobby\/video\.mjpeg\?access_token=/,
    );
    expect(await lobby.getByTestId("camera-phase").textContent()).toBe("streaming");
    expect(await lobby.getByTestId("camera-age").textContent()).toMatch(/\d+(\.\d)? (ms|s)$/);
    expect(await videoClients()).toBe(2);

    // Rule events arrive over the event stream, newest first.
    const rows = page.getByTestId("event-feed").getByTestId("event-row");
    await rows.first().waitFor({ timeout: 60_000 });
    await waitFor(
      "events of both cameras",
      async () => {
        const text = (await rows.allTextContents()).join("\n");
        return text.includes("lobby") && text.includes("corridor") ? text : undefined;
      },
      60_000,
    );
    const stamps = await rows.evaluateAll((els: any[]) => els.map((e) => Number(e.dataset.ts)));
    expect(stamps).toEqual([...stamps].sort((a, b) => b - a));
    expect(await rows.first().locator("time").getAttribute("datetime")).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((await rows.allTextContents()).join("\n")).toMatch(/track \d+/);
    await page.waitForFunction(
      () =>
        Number.parseFloat((globalThis as any).document.querySelector('[data-testid="camera-persons"]').textContent) > 0,
    );
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-grid.png") });

    // The detail view: the bigger video with the camera's zone drawn over it, and its own events.
    await lobby.getByRole("link").click();
    const detail = page.getByTestId("camera-detail");
    await detail.waitFor({ state: "visible" });
    expect(new URL(page.url()).hash).toBe("#/camera/default%2Flobby");
    expect(await page.getByTestId("camera-grid").isVisible()).toBe(false);
    const polygon = detail.getByTestId("zone-polygon");
    await polygon.waitFor({ state: "attached" });
    expect(await polygon.getAttribute("data-zone")).toBe("floor");
    expect(await polygon.getAttribute("points")).toBe(LOBBY_ZONE.map((p) => p.join(",")).join(" "));
    const overlay = detail.getByTestId("zone-overlay");
    expect(await overlay.getAttribute("viewBox")).toBe("0 0 1 1");
    expect(await overlay.getAttribute("preserveAspectRatio")).toBe("none");
    await page.waitForFunction(
      () => (globalThis as any).document.querySelector('[data-testid="detail-video"]').naturalWidth > 0,
      undefined,
      {
        timeout: 20_000,
      },
    );
    // The overlay covers exactly the image, which keeps the video's aspect ratio: normalized zones land right.
    await page.waitForTimeout(300);
    const img = (await detail.getByTestId("detail-video").boundingBox())!;
    const svg = (await overlay.boundingBox())!;
    for (const k of ["x", "y", "width", "height"] as const) expect(Math.abs(img[k] - svg[k])).toBeLessThan(1);
    const natural = await detail.getByTestId("detail-video").evaluate((e: any) => e.naturalWidth / e.naturalHeight);
    expect(Math.abs(img.width / img.height - natural)).toBeLessThan(0.02);
    expect(img.width).toBeGreaterThan(600);
    // The polygon's box on screen is the zone's share of the image (centres exact; sizes within the stroke, which
    // Chromium counts into an SVG element's box).
    const poly = (await polygon.boundingBox())!;
    expect(Math.abs(poly.x + poly.width / 2 - (img.x + 0.5 * img.width))).toBeLessThan(1);
    expect(Math.abs(poly.y + poly.height / 2 - (img.y + 0.685 * img.height))).toBeLessThan(1);
    expect(Math.abs(poly.width - 0.9 * img.width)).toBeLessThan(10);
    expect(Math.abs(poly.height - 0.57 * img.height)).toBeLessThan(10);
    const detailRows = detail.getByTestId("detail-events").getByTestId("event-row");
    await detailRows.first().waitFor();
    for (const t of await detailRows.allTextContents()) expect(t).toContain("lobby");
    // Only the detail's video plays now.
    await waitFor("one video client", async () => (await videoClients()) === 1, 5000);
    await page.waitForTimeout(500);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png") });

    // Back to the grid: the detail's stream ends, the tiles' streams play again.
    await page.keyboard.press("Escape");
    await page.getByTestId("camera-grid").waitFor({ state: "visible" });
    await waitFor("two video clients", async () => (await videoClients()) === 2, 5000);

    // Every API call the page made carried the token and succeeded.
    expect(api.length).toBeGreaterThan(3);
    expect(api.filter((r) => r.status >= 400)).toEqual([]);

    const png = readFileSync(join(ARTIFACTS, "dashboard.png"));
    expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
    expect(png.readUInt32BE(16)).toBe(VIEWPORT.width);
    expect(png.readUInt32BE(20)).toBe(VIEWPORT.height);
    expect(png.length).toBeGreaterThan(50_000);
  });
});
