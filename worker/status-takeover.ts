// Who reports a camera's stream health. Each worker pod applies StreamHealthy, fps, lastFrameTime and reconnects
// under its own field manager, so a worker that lets a camera go can drop exactly its own fields (an apply
// without them) and never the next worker's. Server-side apply's force takes over a field only where values
// differ: fields both wrote with the same value (the condition's `type`, often `status`) stay co-owned by the
// previous worker. If that one died without letting go, the new worker's own later release would leave a
// StreamHealthy entry holding only those fields, which the CRD rejects (measured on the test apiserver: 422,
// "conditions[0].reason: Required value"). So the serving worker removes any other worker's ownership, and
// the report fields with it, in one JSON patch guarded by the resourceVersion it saw, then applies its own
// report again. Pure: builds the patch; the caller sends it.

/** The field manager of one worker pod. */
export const workerFieldManager = (pod: string) => `vigil-worker-${pod}`;

/** Workers before per-pod managers all wrote as this one. */
const SHARED_WORKER_MANAGER = "vigil-worker";
const isWorkerManager = (m: string) => m === SHARED_WORKER_MANAGER || m.startsWith(`${SHARED_WORKER_MANAGER}-`);

/** The status fields a worker reports (the operator owns the rest of the status). */
export const WORKER_STATUS_FIELDS = ["fps", "lastFrameTime", "reconnects"] as const;
export const WORKER_CONDITION = "StreamHealthy";

type ManagedFieldsEntry = { manager?: string; subresource?: string; fieldsV1?: Record<string, unknown> };
export type ObservedCamera = {
  metadata?: { resourceVersion?: string; managedFields?: ManagedFieldsEntry[] };
  status?: Record<string, unknown> & { conditions?: { type?: string }[] };
};

/** Other workers' managers that own part of the status, with their index in managedFields. */
export function foreignReporters(obj: ObservedCamera, mine: string): { index: number; manager: string }[] {
  return (obj.metadata?.managedFields ?? []).flatMap((m, index) => {
    const owned = m.fieldsV1?.["f:status"];
    const ownsSomething = typeof owned === "object" && owned !== null && Object.keys(owned).length > 0;
    return m.subresource === "status" && m.manager && m.manager !== mine && isWorkerManager(m.manager) && ownsSomething
      ? [{ index, manager: m.manager }]
      : [];
  });
}

/**
 * The JSON patch (status subresource) that removes other workers' ownership and the report fields, or
 * undefined when no other worker owns anything. It applies only to the very object observed.
 */
export function takeoverPatch(obj: ObservedCamera, mine: string): object[] | undefined {
  const foreign = foreignReporters(obj, mine);
  const rv = obj.metadata?.resourceVersion;
  if (foreign.length === 0 || !rv) return undefined;
  const ops: object[] = [{ op: "test", path: "/metadata/resourceVersion", value: rv }];
  // Highest index first, so removals do not shift the entries still to remove.
  for (const { index, manager } of [...foreign].reverse())
    ops.push(
      { op: "test", path: `/metadata/managedFields/${index}/manager`, value: manager },
      { op: "remove", path: `/metadata/managedFields/${index}` },
    );
  const conditions = obj.status?.conditions ?? [];
  const c = conditions.findIndex((x) => x.type === WORKER_CONDITION);
  if (c >= 0) ops.push({ op: "remove", path: `/status/conditions/${c}` });
  for (const f of WORKER_STATUS_FIELDS)
    if (obj.status?.[f] !== undefined) ops.push({ op: "remove", path: `/status/${f}` });
  return ops;
}
