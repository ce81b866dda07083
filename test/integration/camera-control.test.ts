// Starting and stopping cameras from the gateway in a cluster: the real apiserver, the operator as a real process
// with its chart RBAC, and a real `vigil gateway` process authenticated as the chart's gateway ServiceAccount under
// the chart's own rendered Role and RoleBinding (helm template, gateway.watchNamespace set). A write token stops a
// camera (spec.paused by merge patch under the field manager vigil-gateway, phase Paused, an Event naming the token)
// and starts it again (Scheduled, an Event naming the token); a read token gets 403 and changes nothing; a
// SubjectAccessReview matrix shows the gateway may patch cameradetections and nothing else beyond its catalog reads.
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuthorizationV1Api, type CoreV1Event, type KubernetesObject } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildGateway } from "../../gateway/app.ts";
import { memoryCatalog } from "../../gateway/catalog-static.ts";
import { createRedisFeed } from "../../gateway/redis-feed.ts";
import { cameraSummary } from "../../gateway/summaries.ts";
import { cameraDetectionSpec } from "../../operator/api/camera-detection.ts";
import { type Clients, kubeConfigWithToken } from "../../operator/kube/client.ts";
import { named, render } from "../setup/chart-render.ts";
import {
  admin,
  cameraManifest,
  createCr,
  freshNamespace,
  getCr,
  mergePatchCr,
  type OperatorProc,
  operatorKubeconfig,
  poolManifest,
  startOperator,
  waitFor,
} from "../setup/kube.ts";
import { type GatewayProc, type Service, startGateway, startRedis } from "../setup/services.ts";
import { type WorkerLeases, workerLeases } from "../setup/worker-leases.ts";

type Obj = Record<string, any>;
const WRITE = "ctl-write-token-0123456789abcdef";
const READ = "ctl-read-token-0123456789abcdef";
const PLAIN = "ctl-plain-token-0123456789abcdef";
const POOL = "p";
const CAM = "door";
const OTHER = "yard";
const enc = encodeURIComponent;

let c: Clients;
let ns: string;
let ID: string;
let redis: Service;
let op: OperatorProc;
let leases: WorkerLeases;
let gw: GatewayProc;
let gatewaySa: string;
/** The chart's gateway Role, as rendered. */
let chartRole: Obj;
const timings: Record<string, number> = {};

const call = (method: string, path: string, token?: string) =>
  fetch(`${gw.base}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
const json = async (method: string, path: string, token?: string) => {
  const r = await call(method, path, token);
  return { status: r.status, body: (await r.json()) as Obj };
};
const cam = (name = CAM) => getCr<Obj>(c, "cameradetections", ns, name);
const cond = (o: Obj, type: string) => (o.status?.conditions ?? []).find((x: Obj) => x.type === type);
const eventsOf = async (name: string, reason?: string): Promise<CoreV1Event[]> =>
  (await c.core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` })).items.filter(
    (e) => !reason || e.reason === reason,
  );
/**
 * The phase, and the worker label that goes with it: the operator writes the status (camera reconcile) and the label
 * (pool reconcile) in two requests, so either may land first. `worker`: the label wanted ("none": no label), if any.
 */
const phaseIs = (phase: string, name = CAM, worker?: string) =>
  waitFor(`${name} ${phase}${worker ? `, worker label ${worker}` : ""}`, async () => {
    const o = await cam(name);
    const label = o.metadata.labels?.["vigil.dev/worker"] ?? "none";
    return o.status?.phase === phase && (!worker || label === worker) && o;
  });

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "ctl");
  ID = `${ns}/${CAM}`;
  // The chart's gateway ServiceAccount, Role and RoleBinding, rendered with the gateway watching this namespace.
  // Release `vigil`: its names are vigil-<component>. Only namespaced objects are applied, so runs do not collide.
  const objects = await render("vigil", ns, "--set", `gateway.watchNamespace=${ns}`);
  gatewaySa = "vigil-gateway";
  chartRole = named(objects, "Role", gatewaySa);
  for (const o of [named(objects, "ServiceAccount", gatewaySa), chartRole, named(objects, "RoleBinding", gatewaySa)])
    await c.objects.create(o as KubernetesObject);
  const token = await c.core.createNamespacedServiceAccountToken({
    name: gatewaySa,
    namespace: ns,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const kubeconfig = join(tmpdir(), `vigil-gateway-${ns}.kubeconfig`);
  writeFileSync(kubeconfig, kubeConfigWithToken(c.kc, gatewaySa, token.status?.token ?? "").exportConfig(), {
    mode: 0o600,
  });

  op = startOperator(await operatorKubeconfig(c, ns), ns);
  leases = workerLeases(c, ns);
  leases.start(`${POOL}-worker-0`);
  await createCr(c, "detectorpools", ns, poolManifest(POOL, { camerasPerWorker: 4 }));
  await createCr(c, "cameradetections", ns, cameraManifest(CAM, POOL));
  await createCr(c, "cameradetections", ns, cameraManifest(OTHER, POOL));

  redis = await startRedis();
  gw = await startGateway([], redis.port, {
    KUBECONFIG: kubeconfig,
    VIGIL_WATCH_NAMESPACE: ns,
    VIGIL_API_TOKEN: `ops:${WRITE}:write,viewer:${READ},${PLAIN}`,
  });
  await waitFor("gateway ready", async () => (await call("GET", "/readyz", READ)).status === 200, 30_000).catch(
    (err) => {
      throw new Error(`${err}\n${gw.logs.join("").slice(-2000)}`);
    },
  );
  await op.port;
  await Promise.all([phaseIs("Scheduled"), phaseIs("Scheduled", OTHER)]);
}, 180_000);

afterAll(async () => {
  gw?.proc.kill("SIGTERM");
  await leases?.close();
  await op?.stop();
  await redis?.stop();
  console.info("camera control timings (ms):", timings);
});

describe("tokens", () => {
  it("GET /api/v1/me answers each token's name and scope; the plain form is read-only, named by position", async () => {
    expect(await json("GET", "/api/v1/me", WRITE)).toEqual({ status: 200, body: { name: "ops", scope: "write" } });
    expect(await json("GET", "/api/v1/me", READ)).toEqual({ status: 200, body: { name: "viewer", scope: "read" } });
    expect(await json("GET", "/api/v1/me", PLAIN)).toEqual({ status: 200, body: { name: "token-3", scope: "read" } });
    expect((await json("GET", "/api/v1/me")).status).toBe(401);
    expect(await json("GET", `/api/v1/me?access_token=${READ}`)).toEqual({
      status: 200,
      body: { name: "viewer", scope: "read" },
    });
  });

  it("logs the tokens' names and scopes at start, never a token", () => {
    const logs = gw.logs.join("");
    expect(logs).toContain('"tokens":["ops:write","viewer:read","token-3:read"]');
    for (const t of [WRITE, READ, PLAIN]) expect(logs).not.toContain(t);
  });
});

describe("POST /api/v1/cameras/{id}/stop and /start", () => {
  it("refuses a read token with 403 naming the scope, and changes nothing", async () => {
    const before = await cam();
    for (const [token, name] of [
      [READ, "viewer"],
      [PLAIN, "token-3"],
    ] as const)
      for (const action of ["stop", "start"]) {
        const r = await json("POST", `/api/v1/cameras/${enc(ID)}/${action}`, token);
        expect(r).toEqual({
          status: 403,
          body: {
            error: "forbidden",
            message: `POST /api/v1/cameras/{id}/${action} needs a token with the write scope; token ${name} has read`,
          },
        });
      }
    expect((await json("POST", `/api/v1/cameras/${enc(ID)}/stop`)).status).toBe(401);
    expect((await json("POST", `/api/v1/cameras/${enc(ID)}/stop`, "not-a-token")).status).toBe(401);
    await new Promise((r) => setTimeout(r, 500));
    const after = await cam();
    expect(after.spec.paused).toBe(false);
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(after.metadata.annotations?.["vigil.dev/control-actor"]).toBeUndefined();
    expect(after.status.phase).toBe("Scheduled");
    expect(await eventsOf(CAM, "Paused")).toEqual([]);
  });

  it("answers 404 for an unknown camera as GET does, and 400 for a malformed id", async () => {
    const missing = `${ns}/nope`;
    const get = await json("GET", `/api/v1/cameras/${enc(missing)}`, WRITE);
    const post = await json("POST", `/api/v1/cameras/${enc(missing)}/stop`, WRITE);
    expect(post).toEqual({ status: 404, body: { error: "not_found", message: `no camera ${missing}` } });
    expect(post).toEqual(get);
    // Another namespace's camera: this gateway does not serve it, so it may not stop it either.
    expect((await json("POST", `/api/v1/cameras/${enc("elsewhere/door")}/stop`, WRITE)).status).toBe(404);
    const bad = await json("POST", "/api/v1/cameras/door/stop", WRITE);
    expect(bad.status).toBe(400);
    expect(bad.body.message).toContain("invalid params parameter 'id'");
  });

  it("stop: 202 with the summary, spec.paused by merge patch as vigil-gateway, phase Paused, one Event naming the token", async () => {
    const t0 = performance.now();
    const r = await json("POST", `/api/v1/cameras/${enc(ID)}/stop`, WRITE);
    timings.stopAnswered = Math.round(performance.now() - t0);
    expect(r.status).toBe(202);
    const summary = (await json("GET", `/api/v1/cameras/${enc(ID)}`, READ)).body;
    // The same summary GET answers, with what was asked for.
    expect(Object.keys(r.body).sort()).toEqual(Object.keys(summary).sort());
    expect(r.body).toMatchObject({ id: ID, name: CAM, namespace: ns, pool: POOL, paused: true });

    const o = await cam();
    expect(o.spec.paused).toBe(true);
    expect(o.metadata.annotations).toMatchObject({
      "vigil.dev/control-actor": "ops",
      "vigil.dev/control-paused": "true",
    });
    // A merge patch (an Update in managedFields) under the gateway's own field manager, owning what it set.
    const mine = (o.metadata.managedFields as Obj[]).find((m) => m.manager === "vigil-gateway");
    expect(mine?.operation).toBe("Update");
    expect(mine?.fieldsV1?.["f:spec"]).toEqual({ "f:paused": {} });
    expect(mine?.fieldsV1?.["f:metadata"]?.["f:annotations"]).toEqual({
      ".": {},
      "f:vigil.dev/control-actor": {},
      "f:vigil.dev/control-paused": {},
    });

    const paused = await phaseIs("Paused", CAM, "none");
    timings.stopToPhasePaused = Math.round(performance.now() - t0);
    expect(cond(paused, "Scheduled")).toMatchObject({ status: "False", reason: "Paused" });
    expect(paused.metadata.labels?.["vigil.dev/worker"]).toBeUndefined();
    const events = await waitFor("the Paused Event", async () => {
      const e = await eventsOf(CAM, "Paused");
      return e.length > 0 && e;
    });
    timings.stopToEvent = Math.round(performance.now() - t0);
    expect(events.map((e) => [e.type, e.message, e.count, e.involvedObject.kind])).toEqual([
      ["Normal", "stopped through the gateway by token ops", 1, "CameraDetection"],
    ]);
    // The gateway's catalog follows: its GET says Paused.
    await waitFor(
      "the gateway to show Paused",
      async () => (await json("GET", `/api/v1/cameras/${enc(ID)}`, READ)).body.status.phase === "Paused",
    );
    timings.stopToGatewayPaused = Math.round(performance.now() - t0);
    // The other camera keeps its worker.
    expect((await cam(OTHER)).status.phase).toBe("Scheduled");
  });

  it("stopping a stopped camera is 202 again and changes nothing: no new generation, no second Event", async () => {
    const before = await cam();
    const r = await json("POST", `/api/v1/cameras/${enc(ID)}/stop`, WRITE);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ id: ID, paused: true, status: { phase: "Paused" } });
    await new Promise((res) => setTimeout(res, 1500));
    const after = await cam();
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect((await eventsOf(CAM, "Paused")).map((e) => e.count)).toEqual([1]);
  });

  it("start: 202, spec.paused false, Scheduled on a worker again, one Resumed Event naming the token", async () => {
    const t0 = performance.now();
    const r = await json("POST", `/api/v1/cameras/${enc(ID)}/start`, WRITE);
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ id: ID, paused: false });
    const o = await cam();
    expect(o.spec.paused).toBe(false);
    expect(o.metadata.annotations).toMatchObject({
      "vigil.dev/control-actor": "ops",
      "vigil.dev/control-paused": "false",
    });
    const back = await phaseIs("Scheduled", CAM, `${POOL}-worker-0`);
    timings.startToPhaseScheduled = Math.round(performance.now() - t0);
    expect(cond(back, "Scheduled")).toMatchObject({ status: "True", reason: "Assigned" });
    expect(back.metadata.labels?.["vigil.dev/worker"]).toBe(`${POOL}-worker-0`);
    const resumed = await waitFor("the Resumed Event", async () => {
      const e = await eventsOf(CAM, "Resumed");
      return e.length > 0 && e;
    });
    expect(resumed.map((e) => [e.type, e.message, e.count])).toEqual([
      ["Normal", "started through the gateway by token ops", 1],
    ]);
    // Starting a running camera: 202, nothing new.
    expect((await json("POST", `/api/v1/cameras/${enc(ID)}/start`, WRITE)).status).toBe(202);
    await new Promise((res) => setTimeout(res, 1000));
    expect((await eventsOf(CAM, "Resumed")).map((e) => e.count)).toEqual([1]);
    expect((await eventsOf(CAM, "Paused")).map((e) => e.count)).toEqual([1]);
    await waitFor(
      "the gateway to show Scheduled",
      async () => (await json("GET", `/api/v1/cameras/${enc(ID)}`, READ)).body.status.phase === "Scheduled",
    );
  });

  it("does not put a later kubectl change down to the token", async () => {
    // spec.paused set by someone else, over annotations the gateway left from a start: they say false, so the
    // Event names nobody.
    await mergePatchCr(c, "cameradetections", ns, OTHER, {
      spec: { paused: true },
      metadata: { annotations: { "vigil.dev/control-actor": "ops", "vigil.dev/control-paused": "false" } },
    });
    await phaseIs("Paused", OTHER);
    const e = await waitFor("the Paused Event", async () => {
      const list = await eventsOf(OTHER, "Paused");
      return list.length > 0 && list;
    });
    expect(e.map((x) => x.message)).toEqual(["camera is paused"]);
  });

  it("answers 503 with the cause when the Kubernetes API refuses the patch, and changes nothing", async () => {
    const authz = c.kc.makeApiClient(AuthorizationV1Api);
    const user = `system:serviceaccount:${ns}:${gatewaySa}`;
    const canPatch = async () =>
      (
        await authz.createSubjectAccessReview({
          body: {
            spec: {
              user,
              resourceAttributes: { verb: "patch", group: "vigil.dev", resource: "cameradetections", namespace: ns },
            },
          },
        })
      ).status?.allowed ?? false;
    // The Role without its patch rule, as a cluster admin who trimmed it would leave it.
    const trimmed = { ...chartRole, rules: [chartRole.rules[0]] };
    await c.objects.replace(trimmed as KubernetesObject);
    try {
      await waitFor("patch denied", async () => !(await canPatch()));
      const before = await cam();
      const r = await json("POST", `/api/v1/cameras/${enc(ID)}/stop`, WRITE);
      expect(r.status).toBe(503);
      expect(r.body.error).toBe("unavailable");
      expect(r.body.message).toContain(`cannot stop ${ID}: the Kubernetes API answered 403`);
      expect(r.body.message).toContain("forbidden");
      expect(r.body.message).not.toContain(WRITE);
      const after = await cam();
      expect(after.spec.paused).toBe(before.spec.paused);
      expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    } finally {
      await c.objects.replace(chartRole as KubernetesObject);
      await waitFor("patch allowed again", canPatch);
    }
  });
});

describe("the gateway's RBAC", () => {
  it("is the chart's: list and watch its catalog, patch cameradetections, nothing else", async () => {
    expect(chartRole.rules).toEqual([
      { apiGroups: ["vigil.dev"], resources: ["cameradetections", "detectorpools"], verbs: ["list", "watch"] },
      { apiGroups: ["vigil.dev"], resources: ["cameradetections"], verbs: ["patch"] },
    ]);
    const authz = c.kc.makeApiClient(AuthorizationV1Api);
    const user = `system:serviceaccount:${ns}:${gatewaySa}`;
    const can = async (verb: string, group: string, resource: string, subresource?: string) =>
      (
        await authz.createSubjectAccessReview({
          body: { spec: { user, resourceAttributes: { verb, group, resource, namespace: ns, subresource } } },
        })
      ).status?.allowed ?? false;
    const verbs = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
    const resources: [string, string, string?][] = [
      ["vigil.dev", "cameradetections"],
      ["vigil.dev", "cameradetections", "status"],
      ["vigil.dev", "detectorpools"],
      ["vigil.dev", "detectorpools", "status"],
      ["", "events"],
      ["events.k8s.io", "events"],
      ["", "secrets"],
      ["", "pods"],
      ["apps", "statefulsets"],
      ["coordination.k8s.io", "leases"],
    ];
    const allowed: string[] = [];
    for (const [group, resource, sub] of resources)
      for (const verb of verbs)
        if (await can(verb, group, resource, sub)) allowed.push(`${verb} ${resource}${sub ? `/${sub}` : ""}`);
    expect(allowed.sort()).toEqual(
      [
        "list cameradetections",
        "watch cameradetections",
        "list detectorpools",
        "watch detectorpools",
        "patch cameradetections",
      ].sort(),
    );
  });
});

describe("without a control (a manifest catalog), and in OpenAPI", () => {
  it("answers 503 to a write token, 403 to a read token", async () => {
    const spec = cameraDetectionSpec.parse({ source: { url: "rtsp://127.0.0.1/x" }, poolRef: { name: POOL } });
    const registry = new Registry();
    const feed = createRedisFeed(`redis://127.0.0.1:${redis.port}`, { registry });
    const app = buildGateway({
      feed,
      catalog: memoryCatalog([cameraSummary("x", "default", spec)]),
      tokens: [`ops:${WRITE}:write`, READ],
      registry,
    });
    try {
      const post = (token: string) =>
        app.inject({
          method: "POST",
          url: "/api/v1/cameras/default%2Fx/stop",
          headers: { authorization: `Bearer ${token}` },
        });
      const w = await post(WRITE);
      expect(w.statusCode).toBe(503);
      expect(w.json()).toEqual({
        error: "unavailable",
        message: "this gateway cannot start or stop cameras: its catalog is a manifest file, not the Kubernetes API",
      });
      const r = await post(READ);
      expect([r.statusCode, r.json().message]).toEqual([
        403,
        "POST /api/v1/cameras/{id}/stop needs a token with the write scope; token token-2 has read",
      ]);
    } finally {
      await app.close();
      await feed.close();
    }
  });

  it("documents /me and the control routes with 202/401/403/404/503", async () => {
    const doc = (await (await call("GET", "/docs/json")).json()) as Obj;
    expect(Object.keys(doc.paths["/api/v1/me"].get.responses).sort()).toEqual(["200", "400", "401", "429"]);
    expect(
      doc.paths["/api/v1/me"].get.responses["200"].content["application/json"].schema.properties.scope.enum,
    ).toEqual(["read", "write"]);
    for (const action of ["start", "stop"]) {
      const op = doc.paths[`/api/v1/cameras/{id}/${action}`]?.post;
      expect(op, action).toBeDefined();
      expect(Object.keys(op.responses).sort()).toEqual(["202", "400", "401", "403", "404", "429", "503"]);
      expect(op.responses["202"].content["application/json"].schema.properties.paused).toEqual({ type: "boolean" });
      expect(op.parameters.map((p: Obj) => [p.in, p.name])).toEqual([["path", "id"]]);
      expect(op.description).toContain("write scope");
    }
  });
});
