// At steady state the operator writes nothing but its lease renewals, while its worker renews its own Lease every
// 2 s: counted from the apiserver's audit log.
import { readFileSync, statSync } from "node:fs";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
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
import { type WorkerLeases, workerLeases } from "../setup/worker-leases.ts";

type Obj = Record<string, any>;
let c: Clients;
let ns: string;
let op: OperatorProc;
let leases: WorkerLeases;

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "quiet");
  op = startOperator(await operatorKubeconfig(c, ns), ns);
  leases = workerLeases(c, ns);
});
afterAll(async () => {
  await leases?.close();
  await op?.stop();
});

it("makes no status (or any other) write in a quiet minute", { timeout: 120_000 }, async () => {
  await createCr(c, "detectorpools", ns, poolManifest("p", { camerasPerWorker: 2, maxWorkers: 1 }));
  leases.start("p-worker-0");
  for (const name of ["a", "b", "c"]) await createCr(c, "cameradetections", ns, cameraManifest(name, "p"));
  // Steady state: every camera decided (two placed, one PoolFull) and the pool's status written.
  await waitFor("steady state", async () => {
    const cams = await Promise.all(["a", "b", "c"].map((n) => getCr<Obj>(c, "cameradetections", ns, n)));
    const pool = await getCr<Obj>(c, "detectorpools", ns, "p");
    return cams.every((x) => x.status?.conditions?.length === 2) && pool.status?.unassignedCameras === 1;
  });
  await new Promise((r) => setTimeout(r, 3000));

  const audit = inject("auditLog");
  const offset = statSync(audit).size;
  await new Promise((r) => setTimeout(r, 60_000));
  const user = `system:serviceaccount:${ns}:vigil-operator`;
  let events = readFileSync(audit)
    .subarray(offset)
    .toString()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((e) => e.stage === "ResponseComplete");
  // The worker's heartbeat (here with the admin's credentials): the operator hears every renewal, and stays quiet.
  const renewals = events.filter(
    (e) => e.verb === "update" && e.objectRef?.resource === "leases" && e.objectRef?.name === "p-worker-0",
  ).length;
  events = events.filter((e) => e.user?.username === user);
  const writes = events.filter((e) => ["create", "update", "patch", "delete"].includes(e.verb));
  const leaseWrites = writes.filter((e) => e.objectRef?.resource === "leases");
  const other = writes.filter((e) => e.objectRef?.resource !== "leases");
  console.log(
    JSON.stringify({
      requests: events.length,
      leaseRenewals: leaseWrites.length,
      otherWrites: other.length,
      workerRenewals: renewals,
    }),
  );
  expect(renewals).toBeGreaterThanOrEqual(20);
  // The measurement works: the leader's renewals (every 2 s) show up in the same log.
  expect(leaseWrites.length).toBeGreaterThanOrEqual(20);
  expect(
    other.map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.subresource ?? ""} ${e.objectRef?.name}`),
  ).toEqual([]);
});
