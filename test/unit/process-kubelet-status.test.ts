import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { inApp, launchArgv, mountScript, shQuote } from "../setup/kubelet/launch.ts";
import { ProbeTracker, probeTarget } from "../setup/kubelet/probe.ts";
import { type ContainerRecord, finalPhase, podStatusPatch, restarts, terminated } from "../setup/kubelet/status.ts";

const t0 = new Date("2026-01-01T00:00:00.500Z");
const t1 = new Date("2026-01-01T00:01:00Z");

const pod: V1Pod = {
  metadata: { name: "p", namespace: "ns" },
  spec: {
    containers: [
      { name: "vigil", image: "ghcr.io/vigil-dev/vigil:0.1.0" },
      { name: "sidecar", image: "busybox" },
    ],
  },
  status: {
    phase: "Running",
    // What kwok's pod-ready stage wrote.
    conditions: [
      { type: "Ready", status: "True", lastTransitionTime: new Date("2025-12-31T00:00:00Z") },
      { type: "ContainersReady", status: "True", lastTransitionTime: new Date("2025-12-31T00:00:00Z") },
    ],
    containerStatuses: [
      { name: "vigil", image: "x", imageID: "", ready: true, restartCount: 0 },
      { name: "sidecar", image: "busybox", imageID: "", ready: true, restartCount: 0 },
    ],
  },
};

const rec = (over: Partial<ContainerRecord>): Map<string, ContainerRecord> =>
  new Map([
    [
      "vigil",
      {
        name: "vigil",
        image: "ghcr.io/vigil-dev/vigil:0.1.0",
        restartCount: 0,
        state: { kind: "running", startedAt: t0, ready: true, pid: 42 },
        ...over,
      },
    ],
  ]);

describe("pod status patch", () => {
  it("reports a running, ready container and keeps the others as they were", () => {
    const { status } = podStatusPatch(pod, rec({}), t1);
    expect(status.containerStatuses).toEqual([
      {
        name: "vigil",
        image: "ghcr.io/vigil-dev/vigil:0.1.0",
        imageID: "ghcr.io/vigil-dev/vigil:0.1.0",
        containerID: "process://42",
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: "2026-01-01T00:00:00Z" } },
      },
      pod.status!.containerStatuses![1],
    ]);
    // Unchanged status: the transition time stays kwok's.
    expect(status.conditions).toEqual([
      { type: "ContainersReady", status: "True", lastTransitionTime: "2025-12-31T00:00:00Z" },
      { type: "Ready", status: "True", lastTransitionTime: "2025-12-31T00:00:00Z" },
    ]);
    expect(status.phase).toBeUndefined();
  });

  it("reports a SIGKILLed container as terminated 137 and a crash loop as waiting, Ready False", () => {
    const end = terminated(null, 9, t0, t1);
    expect(end).toMatchObject({ exitCode: 137, reason: "Error", signal: 9 });
    const { status } = podStatusPatch(
      pod,
      rec({ restartCount: 1, last: end, state: { kind: "waiting", reason: "CrashLoopBackOff", message: "back-off" } }),
      t1,
    );
    const [s] = status.containerStatuses as Record<string, unknown>[];
    expect(s).toMatchObject({
      ready: false,
      started: false,
      restartCount: 1,
      state: { waiting: { reason: "CrashLoopBackOff", message: "back-off" } },
      lastState: {
        terminated: {
          exitCode: 137,
          reason: "Error",
          signal: 9,
          startedAt: "2026-01-01T00:00:00Z",
          finishedAt: "2026-01-01T00:01:00Z",
        },
      },
    });
    expect(status.conditions).toEqual([
      {
        type: "ContainersReady",
        status: "False",
        lastTransitionTime: "2026-01-01T00:01:00Z",
        reason: "ContainersNotReady",
      },
      { type: "Ready", status: "False", lastTransitionTime: "2026-01-01T00:01:00Z", reason: "ContainersNotReady" },
    ]);
  });

  it("holds Ready False while a readiness gate is not True", () => {
    const gated = { ...pod, spec: { ...pod.spec!, readinessGates: [{ conditionType: "x/ok" }] } };
    const ready = (p: V1Pod) =>
      (podStatusPatch(p, rec({}), t1).status.conditions as { type: string; status: string }[]).find(
        (c) => c.type === "Ready",
      )?.status;
    expect(ready(gated)).toBe("False");
    gated.status = { ...pod.status, conditions: [...pod.status!.conditions!, { type: "x/ok", status: "True" }] };
    expect(ready(gated)).toBe("True");
  });

  it("follows restartPolicy and sets the phase only when nothing will run again", () => {
    expect([restarts(undefined, 0), restarts("Always", 1), restarts("OnFailure", 0), restarts("OnFailure", 2)]).toEqual(
      [true, true, false, true],
    );
    expect(restarts("Never", 1)).toBe(false);
    expect(finalPhase("Always", rec({ state: terminated(0, undefined, t0, t1) }))).toBeUndefined();
    expect(finalPhase("Never", rec({ state: terminated(0, undefined, t0, t1) }))).toBe("Succeeded");
    expect(finalPhase("Never", rec({ state: terminated(3, undefined, t0, t1) }))).toBe("Failed");
    expect(finalPhase("Never", rec({}))).toBeUndefined();
  });
});

describe("launch", () => {
  const l = {
    mounts: [
      { source: "/s/tmp", target: "/tmp", readOnly: false },
      { source: "/s/it's", target: "/etc/vigil", readOnly: true },
    ],
    readOnlyRoot: true,
    hostname: "op-0",
    uid: 65532,
    gid: 65532,
    groups: [2000],
    dropAllCaps: true,
    argv: ["/node", "/repo/dist/vigil.js", "operator"],
  };

  it("shows the checkout read-only at /app, as the image has the app, before any volume hides it", () => {
    const lines = mountScript({ ...l, app: "/tmp/clone" }).split("\n");
    expect(lines).toContain("mount --bind '/tmp/clone' /run/process-kubelet-stage/0");
    expect(lines).toContain("mount --bind /run/process-kubelet-stage/0 '/app'");
    expect(lines).toContain("mount -o remount,bind,ro '/app'");
    // The /tmp volume is staged after the checkout, so the checkout under /tmp stays reachable at /app.
    expect(lines).toContain("mount --bind '/s/tmp' /run/process-kubelet-stage/1");
    expect(lines.indexOf("cd /app")).toBe(lines.indexOf(`umount -l /run/process-kubelet-stage`) + 1);
    expect(lines.at(-1)).toMatch(/^exec setpriv .* '\/node'/);
    expect(inApp("/tmp/clone", "/tmp/clone/node_modules/node/bin/node")).toBe("/app/node_modules/node/bin/node");
    expect(inApp("/tmp/clone", "/usr/bin/node")).toBe("/usr/bin/node");
  });

  it("bind-mounts, remounts read-only, sets the hostname, then execs setpriv (same pid)", () => {
    const lines = mountScript(l).split("\n");
    expect(lines[0]).toBe("set -e");
    // Every source is staged before any is mounted at its path: /tmp mounted first must not hide a source under it.
    const stage = (i: number) => `/run/process-kubelet-stage/${i}`;
    expect(lines).toContain(`mount --bind '/s/tmp' ${stage(0)}`);
    expect(lines).toContain(`mount --bind '/s/it'\\''s' ${stage(1)}`);
    expect(lines.indexOf(`mount --bind '/s/it'\\''s' ${stage(1)}`)).toBeLessThan(
      lines.indexOf(`mount --bind ${stage(0)} '/tmp'`),
    );
    expect(lines).toContain(`mount --bind ${stage(1)} '/etc/vigil'`);
    expect(lines).toContain("mount -o remount,bind,ro '/etc/vigil'");
    expect(lines).not.toContain("mount -o remount,bind,ro '/tmp'");
    // The root goes read-only after the mount points were made on it.
    expect(lines.indexOf("mount -o remount,bind,ro /")).toBeGreaterThan(
      lines.indexOf(`mount --bind ${stage(0)} '/tmp'`),
    );
    expect(lines.at(-1)).toBe(
      "exec setpriv --reuid=65532 --regid=65532 --groups=2000 --no-new-privs --inh-caps=-all --bounding-set=-all " +
        "--pdeathsig=KILL -- '/node' '/repo/dist/vigil.js' 'operator'",
    );
    expect(launchArgv(l).slice(0, 8)).toEqual([
      "unshare",
      "--mount",
      "--uts",
      "--propagation",
      "private",
      "--",
      "sh",
      "-c",
    ]);
    expect(mountScript({ ...l, groups: [], readOnlyRoot: false })).toContain("--clear-groups");
    expect(mountScript({ ...l, readOnlyRoot: false })).not.toContain("remount,bind,ro /\n");
    expect(shQuote("a'b")).toBe(`'a'\\''b'`);
  });
});

describe("probes", () => {
  const c = { name: "w", ports: [{ name: "metrics", containerPort: 9090 }] };

  it("aims at the pod IP and resolves named ports", () => {
    expect(probeTarget(c, { httpGet: { path: "readyz", port: "metrics" } }, "127.100.1.2")).toEqual({
      kind: "http",
      url: "http://127.100.1.2:9090/readyz",
      headers: {},
    });
    expect(probeTarget(c, { tcpSocket: { port: 8081 } }, "127.100.1.2")).toEqual({
      kind: "tcp",
      host: "127.100.1.2",
      port: 8081,
    });
    expect(() => probeTarget(c, { httpGet: { port: "nope" } }, "x")).toThrow(/names no container port/);
    expect(() => probeTarget(c, { exec: { command: ["true"] } }, "x")).toThrow(/only httpGet and tcpSocket/);
  });

  it("flips only after the thresholds of results in a row", () => {
    const readiness = new ProbeTracker(2, 3, false);
    expect([true, false, true, true].map((ok) => readiness.observe(ok))).toEqual([
      undefined,
      undefined,
      undefined,
      true,
    ]);
    expect([false, false, true, false, false, false].map((ok) => readiness.observe(ok))).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      false,
    ]);
    const startup = new ProbeTracker(1, 2);
    expect(startup.current).toBeUndefined();
    expect([false, false].map((ok) => startup.observe(ok))).toEqual([undefined, false]);
  });
});
