// A leader whose connection to the apiserver goes silent must stop at its renew deadline, before a standby can take
// over, or two replicas reconcile at once: its queued writes land when the network heals. A TCP proxy in front of the
// real apiserver plays the network; the apiserver's audit log says who wrote what, and when.
import { readFileSync, statSync } from "node:fs";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { workerName } from "../../operator/controllers/workload.ts";
import type { Clients } from "../../operator/kube/client.ts";
import {
  admin,
  cameraManifest,
  createCr,
  freshNamespace,
  getCr,
  type OperatorProc,
  operatorKubeconfig,
  poolManifest,
  startOperator,
  waitFor,
} from "../setup/kube.ts";
import { kubeconfigFileVia, startTcpProxy, type TcpProxy } from "../setup/proxy.ts";
import { type WorkerLeases, workerLeases } from "../setup/worker-leases.ts";

type Obj = Record<string, any>;
type AuditEvent = {
  stage: string;
  verb: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string; name?: string };
  responseStatus?: { code?: number };
  requestReceivedTimestamp: string;
};

// The operator's defaults (operator/config.ts), which this test is about: 10 s lease, 7 s renew deadline.
const RENEW_DEADLINE_MS = 7000;
const WRITES = ["create", "update", "patch", "delete"];

let c: Clients;
let ns: string;
let proxy: TcpProxy;
let oldLeader: OperatorProc;
let standby: OperatorProc;
let auditOffset: number;
let leases: WorkerLeases;
const audit = () => inject("auditLog");

const holder = async () =>
  (
    (await c.coordination.readNamespacedLease({ name: "vigil-operator", namespace: ns })).spec?.holderIdentity ?? ""
  ).replace(/_[0-9a-f]{8}$/, "");
const workerPhase = async () =>
  (await getCr<Obj>(c, "detectorpools", ns, "p")).status?.workers?.find((w: Obj) => w.name === workerName("p", 0))
    ?.phase;

/** The old leader's writes that reached the apiserver after its renew deadline, as "verb resource/name". */
function writesAfterDeadline(): string[] {
  const user = `system:serviceaccount:${ns}:op-old`;
  const writes = readFileSync(audit())
    .subarray(auditOffset)
    .toString()
    .split("\n")
    .filter((l) => l.includes(user))
    .map((l) => JSON.parse(l) as AuditEvent)
    .filter((e) => e.user?.username === user && e.stage === "ResponseComplete" && WRITES.includes(e.verb));
  // Its last acquisition or renewal reached the apiserver after that attempt started: this deadline is never early.
  const renewed = writes
    .filter((e) => e.objectRef?.resource === "leases" && [200, 201].includes(e.responseStatus?.code ?? 0))
    .map((e) => Date.parse(e.requestReceivedTimestamp));
  const deadline = Math.max(...renewed) + RENEW_DEADLINE_MS;
  return writes
    .filter((e) => Date.parse(e.requestReceivedTimestamp) > deadline)
    .map(
      (e) =>
        `${e.verb} ${e.objectRef?.resource}${e.objectRef?.subresource ? `/${e.objectRef.subresource}` : ""}/${e.objectRef?.name}`,
    );
}

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "stall");
  proxy = await startTcpProxy(new URL(c.kc.getCurrentCluster()?.server ?? ""));
  // Two ServiceAccounts, so that the audit log tells the replicas apart; the old leader reaches the apiserver
  // only through the proxy.
  const viaProxy = kubeconfigFileVia(await operatorKubeconfig(c, ns, "op-old"), proxy.port);
  const direct = await operatorKubeconfig(c, ns, "op-new");
  auditOffset = statSync(audit()).size;
  oldLeader = startOperator(viaProxy, ns, { POD_NAME: "op-old" });
  await waitFor("op-old holds the lease", async () => (await holder()) === "op-old");
  standby = startOperator(direct, ns, { POD_NAME: "op-new" });
  await standby.port;
  leases = workerLeases(c, ns);
});
afterAll(async () => {
  await leases?.close();
  await Promise.all([oldLeader?.stop("SIGKILL"), standby?.stop("SIGKILL")]);
  await proxy?.close();
});

it("a leader cut off from the apiserver writes nothing after its renew deadline; the standby leads within 15 s", {
  timeout: 150_000,
}, async () => {
  await createCr(c, "detectorpools", ns, poolManifest("p", { camerasPerWorker: 4, minWorkers: 1, maxWorkers: 1 }));
  await createCr(c, "cameradetections", ns, cameraManifest("cam-1", "p"));
  leases.start(workerName("p", 0));
  await waitFor("cam-1 scheduled", async () => {
    const cam = await getCr<Obj>(c, "cameradetections", ns, "cam-1");
    return cam.status?.conditions?.some((x: Obj) => x.type === "Scheduled" && x.status === "True");
  });
  await waitFor("worker Ready", async () => (await workerPhase()) === "Ready");
  // The worker dies: nothing tells the leader, which looks again when the worker's Lease runs out (within 6 s), on a
  // timer: work a leader does without being told. Now nothing flows between it and the apiserver.
  await leases.kill(workerName("p", 0));
  proxy.mode = "partition";
  const cutAt = Date.now();
  await waitFor("the standby takes the lease", async () => (await holder()) === "op-new", 20_000, 50);
  const takeoverMs = Date.now() - cutAt;
  expect(takeoverMs).toBeLessThan(15_000);
  await waitFor("the new leader marks the worker Lost", async () => (await workerPhase()) === "Lost", 20_000);
  // The partition heals: whatever the old leader sent meanwhile reaches the apiserver now.
  proxy.mode = "pass";

  const old = await oldLeader.proc;
  await waitFor(
    "the old leader to exit, or to write after its renew deadline",
    async () => old.exitCode !== null || writesAfterDeadline().length > 0,
    60_000,
    200,
  );
  await new Promise((r) => setTimeout(r, 2000)); // anything still in flight, and the audit log's own lag
  console.log(JSON.stringify({ takeoverMs, oldLeaderExit: old.exitCode }));
  expect(writesAfterDeadline()).toEqual([]);
  expect(old.exitCode).toBe(1);
  expect(oldLeader.logs.some((l) => l.includes("leadership lost"))).toBe(true);
});
