// Pod status as the kubelet reports it (pure): containerStatuses from what the processes did, the Ready and
// ContainersReady conditions, and the phase once no container will run again. The patch goes to pods/status as a
// strategic merge patch: containerStatuses is an atomic list (sent whole, containers this kubelet does not run
// copied from the current status), conditions merge by type.
import type { V1Pod } from "@kubernetes/client-node";

export type RunState =
  | { kind: "waiting"; reason: string; message?: string }
  | { kind: "running"; startedAt: Date; ready: boolean; pid: number }
  | { kind: "terminated"; exitCode: number; reason: string; startedAt: Date; finishedAt: Date; signal?: number };

export type Terminated = Extract<RunState, { kind: "terminated" }>;

/** What this kubelet knows of one container. */
export type ContainerRecord = {
  name: string;
  image: string;
  restartCount: number;
  state: RunState;
  last?: Terminated;
};

const iso = (d: Date) => d.toISOString().replace(/\.\d+Z$/, "Z");

/** A process's end as the container runtime reports it: a signal is 128 + its number (SIGKILL: 137). */
export function terminated(
  code: number | null,
  signal: number | undefined,
  startedAt: Date,
  finishedAt: Date,
): Terminated {
  const exitCode = code ?? 128 + (signal ?? 0);
  return {
    kind: "terminated",
    exitCode,
    reason: exitCode === 0 ? "Completed" : "Error",
    startedAt,
    finishedAt,
    ...(signal !== undefined ? { signal } : {}),
  };
}

function stateJson(s: RunState): Record<string, unknown> {
  switch (s.kind) {
    case "waiting":
      return { waiting: { reason: s.reason, ...(s.message ? { message: s.message } : {}) } };
    case "running":
      return { running: { startedAt: iso(s.startedAt) } };
    case "terminated":
      return {
        terminated: {
          exitCode: s.exitCode,
          reason: s.reason,
          startedAt: iso(s.startedAt),
          finishedAt: iso(s.finishedAt),
          ...(s.signal !== undefined ? { signal: s.signal } : {}),
        },
      };
  }
}

export function containerStatus(r: ContainerRecord): Record<string, unknown> {
  const running = r.state.kind === "running";
  return {
    name: r.name,
    image: r.image,
    imageID: r.image,
    ...(r.state.kind === "running" ? { containerID: `process://${r.state.pid}` } : {}),
    ready: r.state.kind === "running" && r.state.ready,
    started: running,
    restartCount: r.restartCount,
    state: stateJson(r.state),
    ...(r.last ? { lastState: stateJson(r.last) } : {}),
  };
}

type Condition = { type: string; status: string; lastTransitionTime?: string | Date; reason?: string };

/** A condition whose lastTransitionTime moves only when its status changes (apimachinery's rule). */
function condition(current: Condition[], type: string, ready: boolean, now: Date) {
  const status = ready ? "True" : "False";
  const prev = current.find((c) => c.type === type);
  const lastTransitionTime =
    prev && prev.status === status && prev.lastTransitionTime
      ? typeof prev.lastTransitionTime === "string"
        ? prev.lastTransitionTime
        : iso(prev.lastTransitionTime)
      : iso(now);
  return { type, status, lastTransitionTime, ...(ready ? {} : { reason: "ContainersNotReady" }) };
}

/**
 * The pods/status patch for `records` (the containers this kubelet runs). `phase` is set only when the pod is done
 * (restartPolicy Never/OnFailure and nothing left to run); otherwise the phase kwok wrote (Running) stays.
 */
export function podStatusPatch(
  pod: V1Pod,
  records: ReadonlyMap<string, ContainerRecord>,
  now: Date,
  phase?: "Succeeded" | "Failed",
): { status: Record<string, unknown> } {
  const current = (pod.status?.containerStatuses ?? []) as unknown as { name: string; ready?: boolean }[];
  const statuses = (pod.spec?.containers ?? []).map((c) => {
    const r = records.get(c.name);
    if (r) return containerStatus(r);
    return current.find((s) => s.name === c.name) ?? { name: c.name, image: c.image, ready: false, restartCount: 0 };
  });
  const containersReady = statuses.every((s) => s.ready === true);
  const conditions = (pod.status?.conditions ?? []) as Condition[];
  const gatesReady = (pod.spec?.readinessGates ?? []).every(
    (g) => conditions.find((c) => c.type === g.conditionType)?.status === "True",
  );
  return {
    status: {
      containerStatuses: statuses,
      conditions: [
        condition(conditions, "ContainersReady", containersReady, now),
        condition(conditions, "Ready", containersReady && gatesReady, now),
      ],
      ...(phase ? { phase } : {}),
    },
  };
}

/** Whether a container that ended this way is started again (restartPolicy, default Always). */
export const restarts = (policy: string | undefined, exitCode: number) =>
  policy === "Never" ? false : policy === "OnFailure" ? exitCode !== 0 : true;

/** The pod's phase once every container this kubelet runs has ended for good, else undefined. */
export function finalPhase(
  policy: string | undefined,
  records: ReadonlyMap<string, ContainerRecord>,
): "Succeeded" | "Failed" | undefined {
  const all = [...records.values()];
  if (all.length === 0 || !all.every((r) => r.state.kind === "terminated" && !restarts(policy, r.state.exitCode)))
    return undefined;
  return all.every((r) => r.state.kind === "terminated" && r.state.exitCode === 0) ? "Succeeded" : "Failed";
}
