// The worker's assessment stage, beside the alarm stage: on a camera with spec.assessment, a rule event it names
// (and, with sampleIntervalSeconds, a frame with people in view now and then) becomes an assessment task: its
// images are encoded off the detection path, the message is checked against the assessor's schema and handed to
// the publisher's outbox. Nothing here blocks detection or throws into it: encodes past a bound are skipped and
// counted, a failing one is logged and counted.
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { type AssessmentTask, assessmentTask } from "../../assessor/messages.ts";
import type { CameraDetectionSpec } from "../../operator/api/camera-detection.ts";
import type { RuleEvent } from "../rules/engine.ts";
import type { TaskPublisher } from "./amqp-task-publisher.ts";
import { type FrameView, paddedBox, type Rect, subjectsOfEvent, subjectsOfSample } from "./crops.ts";
import { encodeTaskImages, type ImageInput } from "./images.ts";
import { createSampler } from "./sampler.ts";
import {
  assessesEvent,
  countsOf,
  eventTask,
  mayRaiseAlarm,
  sampleEvidenceId,
  sampleTask,
  type TaskBase,
} from "./tasks.ts";

export type AssessmentCamera = { id: string; spec: CameraDetectionSpec };

/** Stores a snapshot and asks for a clip under alarm id `id` (worker/alarms.ts `evidence`); the snapshot's key. */
export type Keep = (id: string, eventMs: number) => Promise<string | null>;

export type AssessmentStageOptions = {
  /** Absent: assessments are off (no RABBITMQ_URL); cameras with spec.assessment say so once. */
  publisher?: TaskPublisher | undefined;
  registry: Registry;
  log: Logger;
  /** A task not sent to the model by then is dropped (VIGIL_ASSESSMENT_DEADLINE_SECONDS). */
  deadlineSeconds: number;
  /**
   * Tasks being encoded at once; more meanwhile are skipped. One task is 1 + up to 8 small JPEGs: ~5–15 ms of
   * libvips time, so 8 in flight keep up with far more events than a camera makes.
   */
  maxBuildsInFlight?: number;
  now?: () => number;
};

export function createAssessmentStage(opts: AssessmentStageOptions) {
  const { publisher, log } = opts;
  const now = opts.now ?? Date.now;
  const registers = [opts.registry];
  const built = new Counter({
    name: "vigil_assessment_tasks_built_total",
    help: "Assessment tasks built (images encoded, message valid) and handed to the publisher, by trigger",
    labelNames: ["camera", "trigger"],
    registers,
  });
  const failures = new Counter({
    name: "vigil_assessment_task_build_failures_total",
    help: "Assessment tasks not built: encode (the images failed), invalid (the message failed its schema: a bug), busy (too many encodes in flight)",
    labelNames: ["reason"],
    registers,
  });
  for (const reason of ["encode", "invalid", "busy"]) failures.inc({ reason }, 0);
  const sampler = createSampler();
  const warned = new Set<string>();
  const building = new Set<Promise<void>>();
  const maxInFlight = opts.maxBuildsInFlight ?? 8;

  const base = (camera: AssessmentCamera, view: FrameView): Omit<TaskBase, "images"> => ({
    cameraId: camera.id,
    spec: camera.spec,
    counts: countsOf(view.detections, view.classNames),
    nowMs: now(),
    deadlineSeconds: opts.deadlineSeconds,
  });

  function build(
    camera: AssessmentCamera,
    id: string,
    trigger: "event" | "sample",
    frame: ImageInput,
    subjects: readonly (readonly [number, number, number, number])[],
    make: (images: AssessmentTask["images"], snapshotKey: string | null) => AssessmentTask,
    /** Keeps the snapshot and clip an alarm from this task would name; resolves with the snapshot's key. */
    keep?: () => Promise<string | null>,
  ): void {
    if (!publisher) return;
    if (building.size >= maxInFlight) {
      failures.inc({ reason: "busy" });
      log.warn({ camera: camera.id, task: id, inFlight: building.size }, "assessment encodes backed up; task skipped");
      return;
    }
    const rects = subjects.map((b) => paddedBox(b, frame.width, frame.height)).filter((r): r is Rect => r !== null);
    const p = (async () => {
      let images: AssessmentTask["images"];
      try {
        images = await encodeTaskImages(frame, rects);
      } catch (err) {
        failures.inc({ reason: "encode" });
        log.warn({ camera: camera.id, task: id, err: (err as Error).message }, "assessment images not encoded");
        return;
      }
      const snapshotKey = keep ? await keep() : null;
      const checked = assessmentTask.safeParse(make(images, snapshotKey));
      if (!checked.success) {
        failures.inc({ reason: "invalid" });
        const why = checked.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
        log.error({ camera: camera.id, task: id, why }, "assessment task invalid; not published");
        return;
      }
      built.inc({ camera: camera.id, trigger });
      publisher.publish(checked.data);
    })().catch((err: Error) => log.error({ task: id, err: err.message }, "assessment task not built"));
    building.add(p);
    void p.finally(() => building.delete(p));
  }

  return {
    /** Whether this event of this camera becomes a task that will be published. */
    wants: (spec: CameraDetectionSpec, e: Pick<RuleEvent, "rule">) => publisher !== undefined && assessesEvent(spec, e),

    /**
     * A rule event's task, with the snapshot its alarm wrote (null when none); returns at once. `keep` stores the
     * snapshot and clip (under an alarm id) that an alarm raised from the answer names, when the event itself was
     * no alarm and the camera can raise one from an answer (tasks.ts mayRaiseAlarm).
     */
    event(
      camera: AssessmentCamera,
      eventId: string,
      e: RuleEvent,
      snapshotKey: string | null,
      frame: ImageInput,
      view: FrameView,
      keep?: Keep,
    ): void {
      try {
        if (!publisher || !assessesEvent(camera.spec, e)) return;
        const b = base(camera, view);
        const keeps = snapshotKey === null && keep && mayRaiseAlarm(camera.spec);
        build(
          camera,
          eventId,
          "event",
          frame,
          subjectsOfEvent(camera.spec, e, view),
          (images, kept) => eventTask({ ...b, images }, eventId, e, snapshotKey ?? kept),
          keeps ? () => keep(eventId, e.timestampMs) : undefined,
        );
      } catch (err) {
        log.error({ camera: camera.id, task: eventId, err: (err as Error).message }, "assessment task not built");
      }
    },

    /** Every frame with its detections: the camera's periodic sample when one is due; returns at once. */
    frame(camera: AssessmentCamera, frameMs: number, frame: ImageInput, view: FrameView, keep?: Keep): void {
      const interval = camera.spec.assessment?.sampleIntervalSeconds;
      if (!publisher || interval === undefined) return;
      try {
        const people = subjectsOfSample(view);
        if (!sampler.due(camera.id, interval, frameMs, people.length)) return;
        const b = base(camera, view);
        build(
          camera,
          `${camera.id}:sample`,
          "sample",
          frame,
          people,
          (images, kept) => sampleTask({ ...b, images }, frameMs, kept),
          keep && mayRaiseAlarm(camera.spec) ? () => keep(sampleEvidenceId(camera.id, frameMs), frameMs) : undefined,
        );
      } catch (err) {
        log.error({ camera: camera.id, err: (err as Error).message }, "assessment sample not built");
      }
    },

    /** Resolves once every task begun so far is in the outbox (or given up). */
    async idle(): Promise<void> {
      while (building.size) await Promise.allSettled([...building]);
    },

    addCamera(camera: AssessmentCamera): void {
      sampler.forget(camera.id);
      if (!camera.spec.assessment) {
        warned.delete(camera.id);
        return;
      }
      for (const c of ["event", "sample"]) built.inc({ camera: camera.id, trigger: c }, 0);
      if (!publisher && !warned.has(camera.id)) {
        warned.add(camera.id);
        log.warn(
          { camera: camera.id },
          "spec.assessment is set but assessments are off in this worker (no RABBITMQ_URL)",
        );
      }
    },

    removeCamera(id: string): void {
      sampler.forget(id);
      warned.delete(id);
    },
  };
}
export type AssessmentStage = ReturnType<typeof createAssessmentStage>;
