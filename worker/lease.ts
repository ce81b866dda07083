// The worker's heartbeat, as a kubelet's node Lease: the coordination.k8s.io/v1 Lease named like this pod (which the
// operator creates, workload.ts workerIdentity) is renewed every 2 s for 6 s. The operator places cameras only on
// workers whose Lease is live, so a worker process that dies, hangs or loses the apiserver has its cameras moved
// within 6 s, long before Kubernetes notices a dead node (50 s) or evicts its pods (300 s). A worker that stops
// cleanly releases the Lease (no holder), and its cameras move at once. One that cannot run frames (its model
// thread dead or stalled) stops renewing, so its cameras go to a worker that can.
import { randomBytes } from "node:crypto";
import type { CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { apiError, isConflict, statusCode, withSignal } from "../operator/kube/client.ts";

export const LEASE_RENEW_MS = 2000;
export const LEASE_SECONDS = 6;
/** Stopping must not hang on a dead connection: the Lease then simply runs out. */
const RELEASE_TIMEOUT_MS = 2000;

export type WorkerLeaseOptions = {
  /** The Lease API, as this worker's own ServiceAccount (own-identity.ts). */
  api: () => Promise<CoordinationV1Api>;
  /** The apiserver refused the credentials (401): the next api() should bring new ones. */
  onUnauthorized?: () => void;
  namespace: string;
  /** The pod's name, which the Lease carries too. */
  name: string;
  /** holderIdentity; by default the pod's name and a token of this process, so a restarted worker is told apart. */
  identity?: string;
  renewMs?: number;
  durationSeconds?: number;
  /** A reason not to renew now (the model cannot run frames, the cameras are not known yet), or undefined. */
  unhealthy?: () => string | undefined;
  log?: Logger;
};

export type WorkerLease = {
  /** Stops renewing and releases the Lease, so the operator moves this worker's cameras at once. */
  stop(): Promise<void>;
  /** Stops renewing without a word, as a process that dies does: the Lease runs out. */
  abandon(): Promise<void>;
  /** Whether the last renewal succeeded. */
  holding(): boolean;
};

export type Observed = { holder: string; renewTime: string; at: number };

/**
 * How long until this process (`identity`) may take the Lease (pure): at once when no one holds it (a new pod, or a
 * clean stop released it); else only once the holder's record has gone unrenewed for the lease duration, timed from
 * when this process first saw that record, as client-go's leader election does. A Lease is one holder's claim: a
 * worker killed and restarted at once by its kubelet does not keep its cameras through the restart; the operator
 * moves them when the dead process's Lease runs out (≤ 6 s), so cameras never wait on a crash-looping worker, and
 * two processes of one pod never both hold it.
 */
export function takeover(
  observed: Observed | undefined,
  spec: { holderIdentity?: string; renewTime?: Date | string; leaseDurationSeconds?: number } | undefined,
  identity: string,
  now: number,
  durationSeconds: number,
): { waitMs: number; observed: Observed | undefined } {
  const holder = spec?.holderIdentity;
  if (!holder || holder === identity) return { waitMs: 0, observed: undefined };
  const renewTime = spec?.renewTime instanceof Date ? spec.renewTime.toISOString() : String(spec?.renewTime ?? "");
  const seen =
    observed?.holder === holder && observed.renewTime === renewTime ? observed : { holder, renewTime, at: now };
  return {
    waitMs: Math.max(0, seen.at + (spec?.leaseDurationSeconds ?? durationSeconds) * 1000 - now),
    observed: seen,
  };
}

/** The Lease is held by another process (this pod's previous one): not ours until it runs out. */
class HeldElsewhere extends Error {
  readonly holder: string;
  readonly waitMs: number;
  constructor(holder: string, waitMs: number) {
    super(`held by ${holder}`);
    this.holder = holder;
    this.waitMs = waitMs;
  }
}

export function startWorkerLease(o: WorkerLeaseOptions): WorkerLease {
  const { namespace, name } = o;
  const identity = o.identity ?? `${name}_${randomBytes(4).toString("hex")}`;
  const renewMs = o.renewMs ?? LEASE_RENEW_MS;
  const durationSeconds = o.durationSeconds ?? LEASE_SECONDS;
  // A renewal that takes longer than this lands after the Lease ran out; the next one starts afresh.
  const timeoutMs = Math.max(1000, durationSeconds * 1000 - renewMs);
  /** The Lease as last written (or read): its resourceVersion makes the next renewal one request. */
  let lease: V1Lease | undefined;
  /** This process holds the Lease: it acquired it, and has not released it. */
  let acquired = false;
  let ok = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  /** The last problem logged, so that a renewal failing every 2 s is one line, not thirty a minute. */
  let problem: string | undefined;
  /** The other holder's record as first seen, on this process's clock (client-go's observedTime). */
  let observed: Observed | undefined;
  const takeoverWait = (spec: V1Lease["spec"], now: number): number => {
    const r = takeover(observed, spec, identity, now, durationSeconds);
    observed = r.observed;
    return r.waitMs;
  };

  async function write(
    api: CoordinationV1Api,
    signal: AbortSignal,
    change: (spec: V1Lease["spec"]) => V1Lease["spec"],
  ) {
    const options = withSignal(signal);
    // Someone else wrote since (the operator re-applying its labels): read again, once.
    for (let attempt = 0; ; attempt++) {
      lease ??= await api.readNamespacedLease({ name, namespace }, options);
      try {
        lease = await api.replaceNamespacedLease(
          { name, namespace, body: { ...lease, spec: change(lease.spec ?? {}) } },
          options,
        );
        return;
      } catch (err) {
        lease = undefined;
        if (!isConflict(err) || attempt >= 1) throw err;
      }
    }
  }

  async function renew(): Promise<void> {
    const why = o.unhealthy?.();
    if (why) {
      ok = false;
      return report(`not renewing the worker Lease: ${why}`, acquired);
    }
    try {
      const now = new V1MicroTime();
      await write(await o.api(), AbortSignal.timeout(timeoutMs), (spec) => {
        if (!acquired) {
          const wait = takeoverWait(spec, Date.now());
          if (wait > 0) throw new HeldElsewhere(spec?.holderIdentity ?? "", wait);
        }
        return {
          ...spec,
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          renewTime: now,
          ...(acquired
            ? {}
            : { acquireTime: now, leaseTransitions: (spec?.leaseTransitions ?? 0) + (spec?.holderIdentity ? 1 : 0) }),
        };
      });
      if (!acquired) o.log?.info({ lease: `${namespace}/${name}`, durationSeconds, renewMs }, "worker Lease acquired");
      else if (problem) o.log?.info({ lease: `${namespace}/${name}` }, "worker Lease renewed again");
      acquired = true;
      ok = true;
      problem = undefined;
    } catch (err) {
      ok = false;
      if (err instanceof HeldElsewhere) {
        lease = undefined; // read it afresh next time: its holder may renew meanwhile
        return report(
          `worker Lease held by ${err.holder} (this pod's previous process); taking it over once it expires, in ≤ ${Math.ceil(err.waitMs / 1000)} s`,
          false,
        );
      }
      if (statusCode(err) === 401) o.onUnauthorized?.();
      // 404: the operator has not created it yet (it does before the StatefulSet exists, so only briefly).
      report(`worker Lease renewal failed: ${apiError(err)}`, true);
    }
  }

  function report(what: string, warn: boolean): void {
    if (problem === what) return;
    problem = what;
    const line = { lease: `${namespace}/${name}` };
    if (warn) o.log?.warn(line, what);
    else o.log?.info(line, what);
  }

  function schedule(ms: number): void {
    timer = setTimeout(() => {
      const started = performance.now();
      inFlight = renew().finally(() => {
        if (!stopped) schedule(Math.max(0, renewMs - (performance.now() - started)));
      });
    }, ms);
  }
  schedule(0);

  async function halt(): Promise<void> {
    stopped = true;
    clearTimeout(timer);
    await inFlight;
  }

  return {
    async stop() {
      await halt();
      if (!acquired) return;
      acquired = false;
      ok = false;
      try {
        await write(await o.api(), AbortSignal.timeout(RELEASE_TIMEOUT_MS), (spec) => {
          // Taken over meanwhile by another process of this pod: that one's now.
          if (spec?.holderIdentity !== identity) throw new Error(`held by ${spec?.holderIdentity ?? "no one"}`);
          return { ...spec, holderIdentity: undefined, renewTime: new V1MicroTime() };
        });
        o.log?.info({ lease: `${namespace}/${name}` }, "worker Lease released");
      } catch (err) {
        o.log?.warn({ lease: `${namespace}/${name}`, err: apiError(err) }, "worker Lease release failed");
      }
    },
    abandon: halt,
    holding: () => ok,
  };
}
