// One pod on one node: once kwok gave it an IP, its volumes are made and each of its Vigil containers runs as a
// process; a process that ends is restarted with the kubelet's backoff (or not, by restartPolicy), probes set
// readiness, every change is written to pods/status, and the pod's deletion stops the processes (SIGTERM, then
// SIGKILL after the grace period). kill() is a power cut: SIGKILL, no restarts, no more status writes.
import { join } from "node:path";
import { type CoreV1Api, PatchStrategy, setHeaderOptions, type V1Container, type V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { apiError, apiMessage, isNotFound } from "../../../operator/kube/client.ts";
import { afterRestart, type BackoffEntry, type BackoffPolicy, restartDelay } from "./backoff.ts";
import { type ContainerProcess, LogTail, spawnContainer } from "./container.ts";
import { ContainerConfigError, envReferences, expandArgs, resolveEnv } from "./env.ts";
import { isImageOf } from "./image.ts";
import { APP_DIR, inApp, launchArgv } from "./launch.ts";
import { asText, PodVolumes, readSources } from "./pod-volumes.ts";
import { runProbes } from "./probe.ts";
import { identity } from "./security.ts";
import { type ContainerRecord, finalPhase, podStatusPatch, restarts, terminated } from "./status.ts";
import { containerMounts, type PlannedVolume, podVolumes, safeName } from "./volumes.ts";

export type RunnerDeps = {
  core: CoreV1Api;
  repoRoot: string;
  stateDir: string;
  imageRepository: string;
  nodeBinary: string;
  apiserverPort: string;
  caPem: Buffer;
  backoff: BackoffPolicy;
  maxGraceSeconds: number;
  /** How long to wait before trying again a container whose config (a Secret, a key) is missing. */
  configRetryMs: number;
  log: Logger;
  /** Resolves once no other pod's process still holds this IP (kwok hands a deleted pod's IP out again at once). */
  ipFree: (ip: string, uid: string) => Promise<void>;
  /** Where a pod's logs are kept once it is gone. */
  tails: Map<string, Map<string, LogTail>>;
};

type Slot = {
  spec: V1Container;
  record: ContainerRecord;
  proc?: ContainerProcess;
  backoff?: BackoffEntry;
  timer?: NodeJS.Timeout;
  stopProbes?: () => void;
  tail: LogTail;
};

/** Every variable a Vigil process binds a server on: the pod's IP (all pods share this host's network). */
const BIND_VARIABLES = ["VIGIL_HOST", "VIGIL_HEALTH_HOST", "VIGIL_WORKER_HOST", "VIGIL_ALARMS_HOST"];
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export class PodRunner {
  readonly uid: string;
  readonly node: string;
  private pod: V1Pod;
  private state: "waiting-ip" | "preparing" | "running" | "terminating" | "killed" = "waiting-ip";
  private readonly slots = new Map<string, Slot>();
  private volumes: PodVolumes | undefined;
  private planned: PlannedVolume[] = [];
  private prepareTimer: NodeJS.Timeout | undefined;
  private patching = false;
  private patchAgain = false;
  private ended: Promise<void> | undefined;
  private readonly podDir: string;

  private readonly d: RunnerDeps;

  constructor(pod: V1Pod, d: RunnerDeps) {
    this.d = d;
    this.pod = pod;
    this.uid = pod.metadata?.uid ?? "";
    this.node = pod.spec?.nodeName ?? "";
    const ns = pod.metadata?.namespace ?? "default";
    const name = pod.metadata?.name ?? "";
    this.podDir = join(d.stateDir, "pods", safeName(`${ns}_${name}_${this.uid}`));
    const tails = new Map<string, LogTail>();
    d.tails.set(`${ns}/${name}`, tails);
    const known = new Map((pod.status?.containerStatuses ?? []).map((s) => [s.name, s.restartCount ?? 0]));
    for (const c of pod.spec?.containers ?? []) {
      if (!isImageOf(c.image, d.imageRepository)) continue;
      const tail = new LogTail();
      tails.set(c.name, tail);
      this.slots.set(c.name, {
        spec: c,
        tail,
        record: {
          name: c.name,
          image: c.image ?? "",
          restartCount: known.get(c.name) ?? 0,
          state: { kind: "waiting", reason: "ContainerCreating" },
        },
      });
    }
  }

  get namespace(): string {
    return this.pod.metadata?.namespace ?? "default";
  }
  get name(): string {
    return this.pod.metadata?.name ?? "";
  }
  get podIP(): string | undefined {
    return this.pod.status?.podIP;
  }
  get terminating(): boolean {
    return this.state === "terminating" || this.state === "killed";
  }

  processes(): { container: string; pid: number }[] {
    return [...this.slots.values()].flatMap((s) =>
      s.proc?.alive() ? [{ container: s.spec.name, pid: s.proc.pid }] : [],
    );
  }

  /** A newer version of the pod from the watch. */
  update(pod: V1Pod): void {
    if (this.state === "killed") return;
    this.pod = pod;
    if (pod.metadata?.deletionTimestamp) {
      void this.terminate(this.graceSeconds(pod));
      return;
    }
    if (this.state === "waiting-ip" && pod.status?.podIP) {
      this.state = "preparing";
      void this.prepare();
    }
  }

  /** The pod's grace period: the deletion's, unless 0 (kwok deletes at once once it sees a deletionTimestamp). */
  graceSeconds(pod: V1Pod): number {
    const g = pod.metadata?.deletionGracePeriodSeconds || (pod.spec?.terminationGracePeriodSeconds ?? 30);
    return Math.min(g, this.d.maxGraceSeconds);
  }

  /**
   * The pod's claims bound to a hostPath PersistentVolume, and that path: mounted as a kubelet mounts the volume, so
   * what the pods write is where the PV says. Any other claim gets a directory of its own here, shared by the pods
   * that mount it (the ReadWriteMany volume a provisioner would give).
   */
  private async hostPathClaims(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const v of this.pod.spec?.volumes ?? []) {
      const claimName = v.persistentVolumeClaim?.claimName;
      if (!claimName) continue;
      // As a kubelet, the pod waits for its claim to exist and be bound (retried as a config error meanwhile).
      const claim = await this.d.core
        .readNamespacedPersistentVolumeClaim({ name: claimName, namespace: this.namespace })
        .catch(() => undefined);
      if (!claim) throw new ContainerConfigError(`persistentvolumeclaim "${claimName}" not found`);
      if (claim.status?.phase !== "Bound" || !claim.spec?.volumeName)
        throw new ContainerConfigError(`persistentvolumeclaim "${claimName}" is not bound`);
      const pv = await this.d.core.readPersistentVolume({ name: claim.spec.volumeName });
      if (pv.spec?.hostPath?.path) out.set(claimName, pv.spec.hostPath.path);
    }
    return out;
  }

  private async prepare(): Promise<void> {
    const ip = this.pod.status?.podIP ?? "";
    await this.d.ipFree(ip, this.uid);
    if (this.state !== "preparing") return;
    const t0 = Date.now();
    try {
      const bound = await this.hostPathClaims();
      this.planned = podVolumes(this.pod, {
        podDir: this.podDir,
        claimDir: (claim) =>
          bound.get(claim) ?? join(this.d.stateDir, "claims", safeName(this.namespace), safeName(claim)),
      });
      const first = [...this.slots.values()][0]?.spec;
      const who = first ? identity(this.pod, first) : { uid: 65532, volumeGroup: 65532 };
      this.volumes ??= new PodVolumes(
        this.d.core,
        this.planned,
        { uid: who.uid, gid: who.volumeGroup },
        this.d.caPem,
        this.d.log,
      );
      await this.volumes.prepare(this.pod);
    } catch (err) {
      if (this.state !== "preparing") return;
      this.configError(err);
      this.prepareTimer = setTimeout(() => void this.prepare(), this.d.configRetryMs);
      this.prepareTimer.unref();
      return;
    }
    if (this.state !== "preparing") return;
    this.d.log.info({ pod: `${this.namespace}/${this.name}`, ms: Date.now() - t0 }, "volumes ready");
    this.state = "running";
    for (const slot of this.slots.values()) void this.start(slot);
  }

  private configError(err: unknown, only?: Slot): void {
    const message = err instanceof ContainerConfigError ? err.message : apiError(err);
    this.d.log.warn({ pod: `${this.namespace}/${this.name}`, err: message }, "cannot start yet");
    for (const s of only ? [only] : this.slots.values())
      s.record.state = { kind: "waiting", reason: "CreateContainerConfigError", message };
    this.patchStatus();
  }

  private async start(slot: Slot): Promise<void> {
    if (this.state !== "running") return;
    const c = slot.spec;
    let argv: string[];
    let env: Record<string, string>;
    let cwd: string;
    try {
      if (c.command?.length)
        throw new ContainerConfigError(
          `container ${c.name}: command is not supported by the process kubelet (it runs the image's entrypoint, vigil)`,
        );
      const who = identity(this.pod, c);
      const mounts = containerMounts(this.pod, c, this.planned);
      this.volumes?.ensureMountSources(mounts);
      const sources = await readSources(this.d.core, this.namespace, envReferences(c), this.d.caPem);
      if (this.state !== "running") return;
      const podIP = this.pod.status?.podIP ?? "";
      env = resolveEnv(
        this.pod,
        c,
        { secrets: asText(sources.secrets), configMaps: asText(sources.configMaps) },
        this.baseEnv(),
      );
      // Pods share one network namespace here, so "every interface of my pod" has to mean the pod's own IP.
      for (const v of BIND_VARIABLES) env[v] = podIP;
      cwd = c.workingDir || this.d.repoRoot;
      argv = launchArgv({
        mounts,
        readOnlyRoot: who.readOnlyRootFilesystem,
        hostname: this.name.slice(0, 63),
        uid: who.uid,
        gid: who.gid,
        groups: who.groups,
        dropAllCaps: (c.securityContext?.capabilities?.drop ?? []).includes("ALL"),
        app: this.d.repoRoot,
        argv: [inApp(this.d.repoRoot, this.d.nodeBinary), `${APP_DIR}/dist/vigil.js`, ...expandArgs(c, env)],
      });
    } catch (err) {
      if (this.state !== "running") return;
      this.configError(err, slot);
      slot.timer = setTimeout(() => void this.start(slot), this.d.configRetryMs);
      slot.timer.unref();
      return;
    }
    const proc = spawnContainer({
      argv,
      env,
      cwd,
      logFile: join(this.d.stateDir, "logs", safeName(`${this.namespace}_${this.name}_${this.uid}`), `${c.name}.log`),
      tail: slot.tail,
    });
    slot.proc = proc;
    slot.record.state = { kind: "running", startedAt: proc.startedAt, ready: false, pid: proc.pid };
    this.d.log.info(
      {
        pod: `${this.namespace}/${this.name}`,
        container: c.name,
        pid: proc.pid,
        restartCount: slot.record.restartCount,
      },
      "container started",
    );
    slot.stopProbes = runProbes(c, this.pod.status?.podIP ?? "", {
      ready: (ready) => {
        if (slot.proc !== proc || slot.record.state.kind !== "running") return;
        slot.record.state.ready = ready;
        this.patchStatus();
      },
      kill: (why) => {
        if (slot.proc !== proc) return;
        this.d.log.info({ pod: `${this.namespace}/${this.name}`, container: c.name, why }, "killing container");
        void this.stopProcess(proc, this.graceSeconds(this.pod));
      },
    });
    this.patchStatus();
    void proc.exited.then((exit) => this.onExit(slot, proc, exit));
  }

  private baseEnv(): Record<string, string> {
    // The service variables of the `kubernetes` Service, pointing at the apiserver itself: there is no kube-proxy
    // and no Service network here.
    return {
      PATH,
      HOME: "/",
      HOSTNAME: this.name,
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      KUBERNETES_SERVICE_PORT: this.d.apiserverPort,
      KUBERNETES_SERVICE_PORT_HTTPS: this.d.apiserverPort,
    };
  }

  private onExit(slot: Slot, proc: ContainerProcess, exit: Awaited<ContainerProcess["exited"]>): void {
    slot.stopProbes?.();
    if (slot.proc === proc) slot.proc = undefined;
    const end = terminated(exit.code, exit.signal, proc.startedAt, exit.finishedAt);
    this.d.log.info(
      { pod: `${this.namespace}/${this.name}`, container: slot.spec.name, exitCode: end.exitCode },
      "container exited",
    );
    if (this.state === "killed") return;
    if (this.state === "terminating" || !restarts(this.pod.spec?.restartPolicy, end.exitCode)) {
      slot.record.state = end;
      const phase = this.state === "terminating" ? undefined : finalPhase(this.pod.spec?.restartPolicy, this.records());
      this.patchStatus(phase);
      return;
    }
    slot.record.last = end;
    const delay = restartDelay(slot.backoff, exit.finishedAt.getTime(), Date.now(), this.d.backoff);
    const restart = () => {
      slot.timer = undefined;
      if (this.state !== "running") return;
      slot.backoff = afterRestart(slot.backoff, Date.now(), this.d.backoff);
      slot.record.restartCount++;
      void this.start(slot);
    };
    if (delay === 0) {
      restart();
      return;
    }
    slot.record.state = {
      kind: "waiting",
      reason: "CrashLoopBackOff",
      message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${slot.spec.name} pod=${this.name}_${this.namespace}(${this.uid})`,
    };
    this.patchStatus();
    slot.timer = setTimeout(restart, delay);
    slot.timer.unref();
  }

  private records(): Map<string, ContainerRecord> {
    return new Map([...this.slots].map(([k, s]) => [k, s.record]));
  }

  /** Writes the status; calls while a write is in flight coalesce into one more write with the latest state. */
  private patchStatus(phase?: "Succeeded" | "Failed"): void {
    if (this.state === "killed") return;
    if (this.patching) {
      this.patchAgain = true;
      return;
    }
    this.patching = true;
    // The uid makes the write fail rather than land on a namesake: a StatefulSet recreates a deleted pod under the
    // same name at once, while this one's processes may still be stopping.
    const body = { metadata: { uid: this.uid }, ...podStatusPatch(this.pod, this.records(), new Date(), phase) };
    this.d.core
      .patchNamespacedPodStatus(
        { name: this.name, namespace: this.namespace, body, fieldManager: "process-kubelet" },
        setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
      )
      .then(
        (pod) => {
          // The answer carries the conditions just written: the next patch keeps their transition times.
          if (!this.pod.metadata?.deletionTimestamp) this.pod = { ...pod, metadata: { ...pod.metadata } };
        },
        (err) => {
          // Gone, or replaced by a namesake ("metadata.uid: field is immutable"): nothing to report any more.
          if (!isNotFound(err) && !apiMessage(err).includes("metadata.uid"))
            this.d.log.warn({ pod: `${this.namespace}/${this.name}`, err: apiError(err) }, "status patch failed");
        },
      )
      .finally(() => {
        this.patching = false;
        if (this.patchAgain) {
          this.patchAgain = false;
          this.patchStatus();
        }
      });
  }

  private async stopProcess(proc: ContainerProcess, graceSeconds: number): Promise<void> {
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), graceSeconds * 1000);
    await proc.exited;
    clearTimeout(timer);
  }

  private clearTimers(): void {
    clearTimeout(this.prepareTimer);
    for (const s of this.slots.values()) {
      clearTimeout(s.timer);
      s.stopProbes?.();
    }
  }

  /** Stops every process (SIGTERM, SIGKILL after the grace period); resolves once all have exited. Idempotent. */
  terminate(graceSeconds: number): Promise<void> {
    if (this.ended) return this.ended;
    this.state = "terminating";
    this.clearTimers();
    this.ended = (async () => {
      await Promise.all([...this.slots.values()].map((s) => (s.proc ? this.stopProcess(s.proc, graceSeconds) : null)));
      this.volumes?.remove(this.podDir);
    })();
    return this.ended;
  }

  /** A power cut: SIGKILL, no restarts and no status writes from now on. */
  kill(): Promise<void> {
    this.state = "killed";
    this.clearTimers();
    this.volumes?.stop();
    const all = [...this.slots.values()].flatMap((s) => (s.proc ? [s.proc] : []));
    for (const p of all) p.kill("SIGKILL");
    this.ended = Promise.all(all.map((p) => p.exited)).then(() => undefined);
    return this.ended;
  }

  /** Resolves when the runner's processes have all ended after terminate() or kill(). */
  done(): Promise<void> {
    return this.ended ?? Promise.resolve();
  }
}
