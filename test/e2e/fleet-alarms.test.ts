// The alarm path of a helm-installed Vigil (alarms.enabled): on the simulated GPU cluster, the operator, a GPU worker
// and the alarm service (2 replicas) run as processes under the process kubelet, with the chart's RBAC and Secrets,
// against a real RabbitMQ and MariaDB on this host, and deliver to a real HTTP receiver that verifies every
// signature with the `standardwebhooks` package. The worker writes the snapshot and the clip to the chart's clip
// claim, which the alarm service reads (a hostPath PersistentVolume here).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { webhookId } from "../../alarms/webhook/sign.ts";
import { probeDuration } from "../setup/alarm-media.ts";
import { type Broker, startMariaDB, startRabbitMQ } from "../setup/brokers.ts";
import {
  cameraManifest,
  type Fleet,
  isReady,
  poolManifest,
  runningPods,
  startFleet,
  wholeFrameRule,
} from "../setup/fleet.ts";
import { createCr, waitFor } from "../setup/operator-env.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../setup/webhook-receiver.ts";

type Obj = Record<string, any>;
const PRE = 2;
const POST = 2;
const log = (msg: string) => process.stdout.write(`[fleet-alarms] ${msg}\n`);

let f: Fleet;
let rabbit: Broker;
let maria: Broker;
let receiver: WebhookReceiver;

beforeAll(async () => {
  [rabbit, maria, receiver] = await Promise.all([startRabbitMQ(), startMariaDB(), startWebhookReceiver()]);
  f = await startFleet({
    kubeconfig: inject("fullKubeconfig"),
    rtspServers: 1,
    set: ["alarms.enabled=true"],
    secrets: { "vigil-rabbitmq": { url: rabbit.url }, "vigil-mysql": { url: maria.url } },
  });
}, 300_000);

afterAll(async () => {
  await f?.stop();
  await Promise.all([rabbit?.destroy(), maria?.destroy(), receiver?.close()]);
});

describe("alarms on the simulated GPU cluster", () => {
  it("the alarm service runs as 2 replicas under the process kubelet, with the chart's Secrets and RBAC", async () => {
    const pods = await waitFor(
      "2 alarm service pods ready",
      async () => {
        const ready = (await runningPods(f.c, f.namespace, "app.kubernetes.io/component=alarms")).filter(isReady);
        return ready.length === 2 ? ready : undefined;
      },
      120_000,
      500,
    );
    const procs = f.kubelet.processes();
    for (const p of pods) expect(procs.some((x) => x.pod === p.metadata?.name)).toBe(true);
  }, 150_000);

  it("a rule on an RTSP camera → a signed alarm.raised and alarm.clip at the endpoint, the record in MariaDB, the clip in the claim", async () => {
    await f.c.core.createNamespacedSecret({
      namespace: f.namespace,
      body: { metadata: { name: "door-hook" }, stringData: { url: receiver.url, secret: receiver.secret } },
    });
    await createCr(f.c, "detectorpools", f.namespace, poolManifest("alarm", { camerasPerWorker: 1, maxWorkers: 1 }));
    const at = Date.now();
    await createCr(
      f.c,
      "cameradetections",
      f.namespace,
      cameraManifest("door", "alarm", `rtsp://127.0.0.1:${f.rtsp[0]?.port}/cam1`, 2, {
        ...wholeFrameRule(600),
        alarm: {
          minSeverity: "info",
          clip: { preSeconds: PRE, postSeconds: POST },
          dedupWindowSeconds: 30,
          webhookSecretRef: { name: "door-hook" },
        },
      }),
    );
    const done = await waitFor(
      "an alarm delivered as alarm.raised then alarm.clip",
      async () => receiver.verified("alarm.clip").find((r) => r.status === 200),
      180_000,
      250,
    );
    const id: string = (done.body as Obj).data.id;
    log(`camera applied → alarm.clip accepted at the endpoint in ${((done.at - at) / 1000).toFixed(1)} s (${id})`);
    expect(id).toMatch(new RegExp(`^${f.namespace}/door:person:\\d+:\\d+$`));

    // Every request verified by the independent implementation; one accepted delivery of each type, in order.
    expect(receiver.received.filter((r) => !r.verified || r.schemaError)).toEqual([]);
    const raised = receiver.verified("alarm.raised").filter((r) => (r.body as Obj).data.id === id);
    const clip = receiver.verified("alarm.clip").filter((r) => (r.body as Obj).data.id === id);
    expect(raised.map((r) => r.webhookId)).toEqual([webhookId(id, "alarm.raised")]);
    expect(clip.map((r) => r.webhookId)).toEqual([webhookId(id, "alarm.clip")]);
    expect(raised[0]!.at).toBeLessThanOrEqual(clip[0]!.at);

    // The worker wrote the snapshot and the clip to the claim; the delivery names them.
    const snapshotKey: string = (raised[0]!.body as Obj).data.snapshot.key;
    const clipKey: string = (clip[0]!.body as Obj).data.clip.key;
    expect(
      readFileSync(join(f.clipDir, ...snapshotKey.split("/")))
        .subarray(0, 2)
        .toString("hex"),
    ).toBe("ffd8");
    const clipFile = join(f.clipDir, ...clipKey.split("/"));
    expect(existsSync(clipFile)).toBe(true);
    expect(probeDuration(clipFile)).toBeGreaterThanOrEqual(PRE + POST);

    // The record: delivered, every step done; acked only after that (nothing left unacknowledged).
    const db = await mysql.createConnection(maria.url);
    try {
      const row = await waitFor("the final commit", async () => {
        const [r] = (await db.query("SELECT * FROM alarms WHERE id = ?", [id])) as [Obj[], unknown];
        return r[0]?.status === "delivered" && r[0]?.completed_ms != null ? r[0] : undefined;
      });
      expect(row).toMatchObject({ camera_id: `${f.namespace}/door`, rule: "person", clip_key: clipKey });
      const [attempts] = (await db.query(
        "SELECT type FROM alarm_deliveries WHERE alarm_id = ? AND status_code BETWEEN 200 AND 299",
        [id],
      )) as [Obj[], unknown];
      expect(attempts.map((a) => a.type).sort()).toEqual(["alarm.clip", "alarm.raised"]);
    } finally {
      await db.end();
    }
  }, 240_000);
});
