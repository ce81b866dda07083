// Startup, readiness and liveness probes (httpGet and tcpSocket, at the pod IP), with the kubelet's thresholds.
// The target and the threshold counting are pure; runProbes does the I/O on timers.
import { Socket } from "node:net";
import type { V1Container, V1Probe } from "@kubernetes/client-node";
import { ContainerConfigError } from "./env.ts";

export type ProbeTarget =
  | { kind: "http"; url: string; headers: Record<string, string> }
  | { kind: "tcp"; host: string; port: number };

/** A probe's port: a number, or the name of one of the container's ports. */
export function probePort(c: V1Container, port: number | string): number {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  const p = (c.ports ?? []).find((x) => x.name === port);
  if (!p) throw new ContainerConfigError(`container ${c.name}: probe port ${port} names no container port`);
  return p.containerPort;
}

export function probeTarget(c: V1Container, probe: V1Probe, podIP: string): ProbeTarget {
  if (probe.httpGet) {
    const g = probe.httpGet;
    const host = g.host || podIP;
    const scheme = (g.scheme ?? "HTTP").toLowerCase();
    const path = g.path ? (g.path.startsWith("/") ? g.path : `/${g.path}`) : "/";
    const headers = Object.fromEntries((g.httpHeaders ?? []).map((h) => [h.name, h.value]));
    return { kind: "http", url: `${scheme}://${host}:${probePort(c, g.port as number | string)}${path}`, headers };
  }
  if (probe.tcpSocket)
    return {
      kind: "tcp",
      host: probe.tcpSocket.host || podIP,
      port: probePort(c, probe.tcpSocket.port as number | string),
    };
  throw new ContainerConfigError(`container ${c.name}: only httpGet and tcpSocket probes are supported here`);
}

/**
 * Consecutive results against the thresholds (prober's worker): the result flips to success after successThreshold
 * successes in a row and to failure after failureThreshold failures in a row. observe() returns the new result when
 * it flips, else undefined.
 */
export class ProbeTracker {
  private result: boolean | undefined;
  private run = 0;
  private runOf: boolean | undefined;
  private readonly successThreshold: number;
  private readonly failureThreshold: number;

  constructor(successThreshold: number, failureThreshold: number, initial?: boolean) {
    this.successThreshold = successThreshold;
    this.failureThreshold = failureThreshold;
    this.result = initial;
  }

  get current(): boolean | undefined {
    return this.result;
  }

  observe(ok: boolean): boolean | undefined {
    this.run = this.runOf === ok ? this.run + 1 : 1;
    this.runOf = ok;
    if (ok === this.result) return undefined;
    if (this.run >= (ok ? this.successThreshold : this.failureThreshold)) {
      this.result = ok;
      return ok;
    }
    return undefined;
  }
}

const seconds = (v: number | undefined, dflt: number) => (v ?? dflt) * 1000;

async function check(t: ProbeTarget, timeoutMs: number): Promise<boolean> {
  if (t.kind === "http") {
    try {
      const res = await fetch(t.url, {
        headers: t.headers,
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel();
      return res.status >= 200 && res.status < 400;
    } catch {
      return false;
    }
  }
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("error", () => done(false));
    s.connect(t.port, t.host, () => done(true));
  });
}

export type ProbeHooks = {
  /** Readiness changed (without a readiness probe: ready once started). */
  ready: (ready: boolean) => void;
  /** A liveness or startup probe failed for good: the kubelet kills the container. */
  kill: (why: string) => void;
};

/**
 * Runs the container's probes until the returned stop() is called: the startup probe first (while it has not
 * succeeded the others wait), then readiness and liveness, each every periodSeconds after initialDelaySeconds.
 */
export function runProbes(c: V1Container, podIP: string, hooks: ProbeHooks): () => void {
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  const loop = (probe: V1Probe, onResult: (ok: boolean) => boolean) => {
    const target = probeTarget(c, probe, podIP);
    const tick = async () => {
      if (stopped) return;
      const ok = await check(target, seconds(probe.timeoutSeconds, 1));
      if (stopped || !onResult(ok)) return;
      later(seconds(probe.periodSeconds, 10), tick);
    };
    later(seconds(probe.initialDelaySeconds, 0), tick);
  };
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    t.unref();
    timers.add(t);
  };
  const afterStartup = () => {
    if (c.readinessProbe) {
      const p = c.readinessProbe;
      const r = new ProbeTracker(p.successThreshold ?? 1, p.failureThreshold ?? 3, false);
      loop(p, (ok) => {
        const flip = r.observe(ok);
        if (flip !== undefined) hooks.ready(flip);
        return true;
      });
    } else hooks.ready(true);
    if (c.livenessProbe) {
      const p = c.livenessProbe;
      const l = new ProbeTracker(1, p.failureThreshold ?? 3, true);
      loop(p, (ok) => {
        if (l.observe(ok) !== false) return true;
        hooks.kill("Liveness probe failed");
        return false;
      });
    }
  };
  if (c.startupProbe) {
    const p = c.startupProbe;
    const s = new ProbeTracker(1, p.failureThreshold ?? 3);
    loop(p, (ok) => {
      const flip = s.observe(ok);
      if (flip === true) afterStartup();
      else if (flip === false) hooks.kill("Startup probe failed");
      return flip === undefined;
    });
  } else afterStartup();
  return () => {
    stopped = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
  };
}
