// Two operator processes share one Lease: exactly one reconciles; kill it and the other takes over.

import { afterAll, beforeAll, expect, it } from "vitest";
import { workerName } from "../../operator/controllers/workload.ts";
import type { Clients } from "../../operator/kube/client.ts";
import {
  admin,
  cameraManifest,
  createCr,
  freshNamespace,
  getCr,
  metricValue,
  type OperatorProc,
  operatorKubeconfig,
  poolManifest,
  startOperator,
  waitFor,
} from "../setup/kube.ts";
import { type WorkerLeases, workerLeases } from "../setup/worker-leases.ts";

type Obj = Record<string, any>;
let c: Clients;
let ns: string;
let kubeconfig: string;
const ops: Record<string, OperatorProc> = {};
let leases: WorkerLeases;

const holder = async () =>
  (
    (await c.coordination.readNamespacedLease({ name: "vigil-operator", namespace: ns })).spec?.holderIdentity ?? ""
  ).replace(/_[0-9a-f]{8}$/, "");
const scheduled = async (name: string) => {
  const o = await getCr<Obj>(c, "cameradetections", ns, name);
  return o.status?.conditions?.some((x: Obj) => x.type === "Scheduled" && x.status === "True");
};
const camera = (name: string) => cameraManifest(name, "p");

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "le");
  leases = workerLeases(c, ns);
  kubeconfig = await operatorKubeconfig(c, ns);
  for (const id of ["op-a", "op-b"]) ops[id] = startOperator(kubeconfig, ns, { POD_NAME: id });
  await Promise.all(Object.values(ops).map((o) => o.port));
});
afterAll(async () => {
  await leases?.close();
  await Promise.all(Object.values(ops).map((o) => o.stop("SIGKILL")));
});

it("a standby stopped with SIGTERM exits 0 and prints no error", async () => {
  const leader = await waitFor("a lease holder", async () => (await holder()) || undefined);
  const standby = startOperator(kubeconfig, ns, { POD_NAME: "op-standby" });
  await standby.port;
  // Up and waiting for the lease, not leading.
  expect(metricValue(await standby.metrics(), "leader_election_master_status")).toBe(0);
  expect(await holder()).toBe(leader);
  const code = await standby.stop("SIGTERM");
  expect(code).toBe(0);
  // Every line is one of its JSON log records, none at warn or above: no stack trace, no error.
  const records = standby.logs.map((l) => {
    try {
      return JSON.parse(l) as { level: number; msg: string };
    } catch {
      return { level: 100, msg: l };
    }
  });
  expect(records.filter((r) => r.level >= 40)).toEqual([]);
  expect(records.at(-1)?.msg).toBe("operator stopped");
});

it("exactly one replica reconciles; the other takes over within 15 s of the leader's death", async () => {
  const leader = await waitFor("a lease holder", async () => (await holder()) || undefined);
  const standby = leader === "op-a" ? "op-b" : "op-a";
  await createCr(c, "detectorpools", ns, poolManifest("p", { camerasPerWorker: 4, maxWorkers: 2 }));
  // The worker's heartbeat (its Lease): cameras go only to workers that run.
  leases.start(workerName("p", 0));
  await createCr(c, "cameradetections", ns, camera("cam-1"));
  await waitFor("cam-1 scheduled", () => scheduled("cam-1"));

  const [lm, sm] = [await ops[leader]!.metrics(), await ops[standby]!.metrics()];
  expect(metricValue(lm, "controller_runtime_reconcile_total")).toBeGreaterThan(0);
  expect(metricValue(sm, "controller_runtime_reconcile_total")).toBe(0);
  expect(metricValue(lm, "leader_election_master_status")).toBe(1);
  expect(metricValue(sm, "leader_election_master_status")).toBe(0);

  // SIGKILL: no chance to hand the lease back, so the standby must wait out the lease.
  await ops[leader]!.stop("SIGKILL");
  const killedAt = Date.now();
  await createCr(c, "cameradetections", ns, camera("cam-2"));
  await waitFor("standby takes the lease", async () => (await holder()) === standby, 20_000, 50);
  await waitFor("cam-2 scheduled by the new leader", () => scheduled("cam-2"), 20_000, 50);
  const takeoverMs = Date.now() - killedAt;
  console.log(JSON.stringify({ takeoverMs }));
  expect(takeoverMs).toBeLessThan(15_000);
  expect(metricValue(await ops[standby]!.metrics(), "leader_election_master_status")).toBe(1);
});

it("a leader stopped with SIGTERM hands its lease back at once", async () => {
  const leader = await holder();
  expect(await ops[leader]!.stop("SIGTERM")).toBe(0);
  expect(await holder()).toBe("");
});
