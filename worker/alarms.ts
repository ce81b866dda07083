// The worker's alarm stage. On a camera with spec.alarm, a rule event at or above alarm.minSeverity becomes an
// alarm: the annotated JPEG of its frame goes into the clip store first (so the bus event and the alarm both carry
// its key and the alarm service can send it with `alarm.raised`), then the alarm goes to the publisher's outbox,
// then the clip service is asked to cut the replay clip once the post-roll is recorded. Nothing here blocks
// detection or throws into it: a snapshot that fails or is slow leaves snapshot_key null, a clip that fails is
// logged and counted (the alarm service sees no clip object and says so).
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { ClipError, type ClipService } from "../alarms/clips/clip-service.ts";
import { alarmObjectKeys, type ClipStore, clipFailureKey } from "../alarms/clips/store.ts";
import { type AlarmMessage, alarmMessage } from "../alarms/messages.ts";
import type { AlarmPublisher } from "../alarms/queue.ts";
import type { CameraDetectionSpec } from "../operator/api/camera-detection.ts";
import type { Credentials } from "./ingest/source-url.ts";
import type { RuleEvent } from "./rules/engine.ts";

/** The part of the clip service the worker drives. */
export type ClipRequester = Pick<ClipService, "addCamera" | "removeCamera" | "requestClip">;

export type AlarmCamera = { id: string; spec: CameraDetectionSpec; credentials?: Credentials };

export type AlarmStageOptions = {
  /** Absent: alarms are off (no broker and no embedded queue configured); cameras with spec.alarm say so once. */
  publisher?: AlarmPublisher | undefined;
  /** Where snapshots go; absent, alarms carry no snapshot. */
  store?: ClipStore | undefined;
  /** Records the cameras' streams and cuts clips; absent, no clips are cut. */
  clips?: ClipRequester | undefined;
  /** File sources play in real time and loop (passed on to the clip recorder). */
  realtimeFiles?: boolean;
  registry: Registry;
  log: Logger;
  /** A snapshot not in the store by then is given up: the alarm goes without it (default 5 s). */
  snapshotTimeoutMs?: number;
  /** Snapshots encoded and written at once; more alarms meanwhile go without one (default 8). */
  maxSnapshotsInFlight?: number;
};

const SEVERITY_RANK = { info: 0, warning: 1, critical: 2 } as const;

/** Whether an event on a camera with this alarm spec is an alarm (pure). */
export function isAlarm(spec: Pick<CameraDetectionSpec, "alarm">, e: Pick<RuleEvent, "severity">): boolean {
  return spec.alarm !== undefined && SEVERITY_RANK[e.severity] >= SEVERITY_RANK[spec.alarm.minSeverity];
}

/** The alarm message of a rule event (pure): `eventId` is the bus event's id, `<camera id>:<rule>:<track>:<ms>`. */
export function alarmOf(
  cameraId: string,
  alarm: NonNullable<CameraDetectionSpec["alarm"]>,
  eventId: string,
  e: RuleEvent,
  snapshotKey: string | null,
): AlarmMessage {
  return {
    v: 1,
    type: "alarm",
    id: eventId,
    camera_id: cameraId,
    rule: e.rule,
    kind: e.kind,
    severity: e.severity,
    track_id: e.trackId,
    zone: e.zone ?? null,
    box: e.box ? [e.box[0], e.box[1], e.box[2], e.box[3]] : null,
    timestamp: new Date(e.timestampMs).toISOString(),
    detail: e.detail,
    ...alarmDeliveryOf(alarm, eventId, snapshotKey),
  };
}

/**
 * What an alarm with this id needs besides the event (pure): its snapshot, where its clip goes, and how it is
 * deduplicated and signed. Assessment tasks carry the same, so an alarm raised from a result matches one raised here.
 */
export function alarmDeliveryOf(
  alarm: NonNullable<CameraDetectionSpec["alarm"]>,
  id: string,
  snapshotKey: string | null,
): Pick<AlarmMessage, "snapshot_key" | "clip" | "dedup_window_seconds" | "webhook_secret"> {
  return {
    snapshot_key: snapshotKey,
    clip: {
      key: alarmObjectKeys(id).clip,
      pre_seconds: alarm.clip.preSeconds,
      post_seconds: alarm.clip.postSeconds,
    },
    dedup_window_seconds: alarm.dedupWindowSeconds,
    webhook_secret: alarm.webhookSecretRef?.name ?? null,
  };
}

export function createAlarmStage(opts: AlarmStageOptions) {
  const { publisher, store, clips, log } = opts;
  const registers = [opts.registry];
  const raised = new Counter({
    name: "vigil_alarms_raised_total",
    help: "Rule events that became alarms (at or above the camera's alarm.minSeverity)",
    labelNames: ["camera"],
    registers,
  });
  const snapshots = new Counter({
    name: "vigil_alarm_snapshots_total",
    help: "Alarm snapshots: written to the clip store, failed, timed out, or skipped (too many in flight, no store)",
    labelNames: ["result"],
    registers,
  });
  // The clip service counts and logs each request's result (vigil_alarm_clips_total); this counts what it cannot.
  const clipErrors = new Counter({
    name: "vigil_alarm_clip_errors_total",
    help: "Clip requests that failed outside the clip service's own results (a bug: see the log)",
    registers,
  });
  const invalid = new Counter({
    name: "vigil_alarms_invalid_total",
    help: "Alarms not published because they failed the alarm message schema (a bug: see the log)",
    registers,
  });
  /** Cameras handed to the clip service, so only those are taken back. */
  const recording = new Set<string>();
  let snapshotsInFlight = 0;
  /** Alarms between their event and the outbox (writing their snapshot), for a stop to wait on. */
  const raising = new Set<Promise<unknown>>();
  const maxInFlight = opts.maxSnapshotsInFlight ?? 8;
  const timeoutMs = opts.snapshotTimeoutMs ?? 5000;

  async function writeSnapshot(key: string, render: () => Promise<Buffer>, cameraId: string): Promise<boolean> {
    if (!store) {
      snapshots.inc({ result: "skipped" });
      return false;
    }
    if (snapshotsInFlight >= maxInFlight) {
      // A wedged volume must not pile up frames in memory: past this, alarms go out without a picture.
      snapshots.inc({ result: "skipped" });
      log.warn({ camera: cameraId, inFlight: snapshotsInFlight }, "alarm snapshots backed up; this one skipped");
      return false;
    }
    snapshotsInFlight++;
    const write = (async () => store.put(key, { bytes: await render() }, "image/jpeg"))().finally(
      () => snapshotsInFlight--,
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((r) => {
      timer = setTimeout(() => r("timeout"), timeoutMs);
    });
    try {
      const r = await Promise.race([write, timedOut]);
      if (r === "timeout") {
        snapshots.inc({ result: "timeout" });
        log.warn({ camera: cameraId, key, timeoutMs }, "alarm snapshot too slow; the alarm goes without it");
        write.catch(() => undefined);
        return false;
      }
      snapshots.inc({ result: "written" });
      return true;
    } catch (err) {
      snapshots.inc({ result: "failed" });
      log.warn({ camera: cameraId, key, err: (err as Error).message }, "alarm snapshot not written");
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  type ClipOf = Pick<AlarmMessage, "id" | "camera_id" | "clip">;
  function requestClip(m: ClipOf, eventMs: number): void {
    if (!clips) return;
    let pending: Promise<{ startMs: number; durationS: number }>;
    try {
      pending = clips.requestClip({
        key: m.clip.key,
        cameraId: m.camera_id,
        eventMs,
        preSeconds: m.clip.pre_seconds,
        postSeconds: m.clip.post_seconds,
      });
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.catch((err: Error) => {
      // The clip will never come: say why beside its key, so the alarm service stops waiting for it at once.
      store
        ?.put(
          clipFailureKey(m.clip.key),
          { bytes: Buffer.from(JSON.stringify({ reason: err?.message })) },
          "application/json",
        )
        .catch((e: Error) => log.warn({ alarm: m.id, err: e.message }, "could not record why the clip failed"));
      if (err instanceof ClipError) return; // counted and logged by the clip service, with its reason
      clipErrors.inc();
      log.error({ alarm: m.id, key: m.clip.key, err: err?.message }, "alarm clip request failed");
    });
  }

  async function raise(
    camera: AlarmCamera,
    eventId: string,
    e: RuleEvent,
    render: () => Promise<Buffer>,
  ): Promise<string | null> {
    const alarm = camera.spec.alarm;
    if (!publisher || !alarm) return null;
    try {
      raised.inc({ camera: camera.id });
      const keys = alarmObjectKeys(eventId);
      const snapshotKey = (await writeSnapshot(keys.snapshot, render, camera.id)) ? keys.snapshot : null;
      const m = alarmOf(camera.id, alarm, eventId, e, snapshotKey);
      const checked = alarmMessage.safeParse(m);
      if (!checked.success) {
        invalid.inc();
        const why = checked.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
        log.error({ alarm: eventId, why }, "alarm message invalid; not published");
        return snapshotKey;
      }
      publisher.publish(checked.data);
      requestClip(checked.data, e.timestampMs);
      return snapshotKey;
    } catch (err) {
      log.error({ alarm: eventId, err: (err as Error).message }, "alarm not raised");
      return null;
    }
  }

  /**
   * The snapshot and the replay clip of something that is not an alarm yet but may become one later: an event (or
   * a periodic sample) sent for assessment, whose high-risk answer raises an alarm that names these keys. The clip
   * has to be cut from the rolling buffer now (it keeps a minute or so), not when the answer comes.
   */
  async function evidence(
    camera: AlarmCamera,
    id: string,
    eventMs: number,
    render: () => Promise<Buffer>,
  ): Promise<string | null> {
    const alarm = camera.spec.alarm;
    if (!publisher || !alarm) return null;
    try {
      const keys = alarmObjectKeys(id);
      const snapshotKey = (await writeSnapshot(keys.snapshot, render, camera.id)) ? keys.snapshot : null;
      const clip = { key: keys.clip, pre_seconds: alarm.clip.preSeconds, post_seconds: alarm.clip.postSeconds };
      requestClip({ id, camera_id: camera.id, clip }, eventMs);
      return snapshotKey;
    } catch (err) {
      log.error({ alarm: id, err: (err as Error).message }, "assessment evidence not kept");
      return null;
    }
  }

  function removeCamera(id: string): void {
    if (!recording.delete(id)) return;
    try {
      clips?.removeCamera(id);
    } catch (err) {
      log.warn({ camera: id, err: (err as Error).message }, "clip recording not stopped");
    }
  }

  return {
    /** Whether this event on this camera is an alarm that will be published. */
    wants: (spec: Pick<CameraDetectionSpec, "alarm">, e: RuleEvent) => publisher !== undefined && isAlarm(spec, e),

    /**
     * Snapshot, publish, ask for the clip. Resolves with the snapshot's key (null when there is none) once the
     * alarm is in the outbox, so the caller's bus event carries the same key; never rejects.
     */
    raise(camera: AlarmCamera, eventId: string, e: RuleEvent, render: () => Promise<Buffer>): Promise<string | null> {
      const p = raise(camera, eventId, e, render);
      raising.add(p);
      void p.finally(() => raising.delete(p));
      return p;
    },

    /** Snapshot and clip for a task that may raise an alarm (see `evidence`); the snapshot's key, or null. */
    evidence(camera: AlarmCamera, id: string, eventMs: number, render: () => Promise<Buffer>): Promise<string | null> {
      const p = evidence(camera, id, eventMs, render);
      raising.add(p);
      void p.finally(() => raising.delete(p));
      return p;
    },

    /** Resolves once every alarm raised so far is in the outbox (or given up). */
    async idle(): Promise<void> {
      while (raising.size) await Promise.allSettled([...raising]);
    },

    /**
     * A camera joins or changes: its stream is recorded for clips while it has spec.alarm (the clip service keeps
     * the recorder of a source that did not change).
     */
    addCamera(camera: AlarmCamera): void {
      if (!camera.spec.alarm) {
        removeCamera(camera.id);
        return;
      }
      if (!publisher) {
        log.warn(
          { camera: camera.id },
          "spec.alarm is set but alarms are off in this worker (no RABBITMQ_URL, no VIGIL_ALARM_QUEUE)",
        );
        return;
      }
      if (!store) log.warn({ camera: camera.id }, "no clip store (VIGIL_CLIP_DIR): alarms go without snapshot or clip");
      try {
        clips?.addCamera(camera.id, {
          url: camera.spec.source.url,
          ...(camera.credentials ? { credentials: camera.credentials } : {}),
          transport: camera.spec.source.transport,
          ...(opts.realtimeFiles ? { realtimeFile: true } : {}),
        });
        if (clips) recording.add(camera.id);
      } catch (err) {
        log.error({ camera: camera.id, err: (err as Error).message }, "clip recording not started");
      }
    },

    removeCamera,
  };
}
export type AlarmStage = ReturnType<typeof createAlarmStage>;
