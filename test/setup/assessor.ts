// Helpers for the assessor's tests and benchmark: valid tasks (real JPEGs the fake provider reads), a pool file for
// `vigil assessor --pool`, `vigil assessor` as a real child process, a confirming task publisher, and a queue reader.
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import amqp, { type ChannelModel, type ConfirmChannel } from "amqplib";
import sharp from "sharp";
import { stringify } from "yaml";
import { declareAssessmentTopology } from "../../assessor/amqp/topology.ts";
import { ASSESSMENT_TOPOLOGY, type AssessmentTask, taskRoutingKey } from "../../assessor/messages.ts";
import { exitOf, listeningPort, ROOT } from "./operator-env.ts";

const jpeg = (width: number, height: number, shade: number) =>
  sharp({ create: { width, height, channels: 3, background: { r: shade, g: shade, b: shade } } })
    .jpeg()
    .toBuffer();

let images: { frame: string; crop: string } | undefined;
async function sampleImages() {
  images ??= {
    frame: (await jpeg(320, 180, 120)).toString("base64"),
    crop: (await jpeg(64, 128, 60)).toString("base64"),
  };
  return images;
}

export const POOL = { namespace: "default", name: "llm" } as const;

export async function makeTask(
  id: string,
  camera: string,
  opts: { priority?: "alarm" | "normal"; deadlineMs?: number; createdAt?: number; threshold?: number | null } = {},
): Promise<AssessmentTask> {
  const img = await sampleImages();
  const created = opts.createdAt ?? Date.now();
  return {
    v: 1,
    type: "assessment.task",
    id,
    camera_id: camera,
    pool: POOL,
    trigger: { kind: "sample" },
    priority: opts.priority ?? "normal",
    prompt: "Rate the risk in these images. Answer in json.",
    threshold: opts.threshold ?? null,
    created_at: new Date(created).toISOString(),
    deadline: new Date(created + (opts.deadlineMs ?? 120_000)).toISOString(),
    context: { camera: camera.split("/")[1] as string, zone: null, rule: null, counts: { person: 1 } },
    images: [
      { role: "frame", jpeg_base64: img.frame, width: 320, height: 180 },
      { role: "crop", jpeg_base64: img.crop, width: 64, height: 128, box: [10, 10, 74, 138] },
    ],
    alarm: null,
  };
}

export type PoolKey = { name: string; key: string; scope: string; rps?: number; rpm?: number };

/** `--pool FILE`: the AssessmentPool manifest with its keys inline. */
export function writePoolFile(
  file: string,
  baseURL: string,
  keys: PoolKey[],
  spec: Record<string, unknown> = {},
): string {
  writeFileSync(
    file,
    stringify({
      apiVersion: "vigil.dev/v1alpha1",
      kind: "AssessmentPool",
      metadata: { name: POOL.name, namespace: POOL.namespace },
      spec: {
        provider: { baseURL, model: "qwen-vl-max" },
        keysSecretRef: { name: "llm-keys" },
        strategy: "least-loaded",
        timeoutSeconds: 5,
        ...spec,
      },
      keys,
    }),
  );
  return file;
}

export type AssessorProc = { proc: ChildProcess; port: number; logs: string[]; exited: Promise<void> };

/** `vigil assessor --pool FILE`, or with no file its Kubernetes source (KUBECONFIG in `env`). */
export async function startAssessor(
  poolFile: string | undefined,
  env: Record<string, string>,
  logs: string[] = [],
): Promise<AssessorProc> {
  const args = poolFile === undefined ? [] : ["--pool", poolFile];
  const proc = spawn(process.execPath, [join(ROOT, "bin", "vigil.ts"), "assessor", ...args], {
    env: { ...process.env, VIGIL_ASSESSOR_PORT: "0", VIGIL_ASSESSOR_HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let own = "";
  for (const s of [proc.stdout, proc.stderr])
    s?.on("data", (b: Buffer) => {
      const t = b.toString();
      own += t;
      if (own.length > 200_000) own = own.slice(-100_000);
      logs.push(t);
      if (logs.length > 2000) logs.splice(0, 1000);
    });
  const exited = exitOf(proc).then(() => undefined);
  const port = await listeningPort(proc, () => own, "assessor listening");
  return { proc, port, logs, exited };
}

export async function stopAssessor(a: AssessorProc, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill(signal);
  await a.exited;
}

export const metricsOf = async (a: AssessorProc) => (await fetch(`http://127.0.0.1:${a.port}/metrics`)).text();

export type TaskPublisher = {
  publish(task: AssessmentTask | Buffer, routingKey?: string): Promise<void>;
  ch: ConfirmChannel;
  close(): Promise<void>;
};

export async function taskPublisher(url: string): Promise<TaskPublisher> {
  const conn: ChannelModel = await amqp.connect(url);
  const ch = await conn.createConfirmChannel();
  await declareAssessmentTopology(ch);
  return {
    ch,
    publish: (task, routingKey) =>
      new Promise<void>((resolve, reject) => {
        const body = Buffer.isBuffer(task) ? task : Buffer.from(JSON.stringify(task));
        const rk = routingKey ?? (Buffer.isBuffer(task) ? "task.default.x" : taskRoutingKey(task.camera_id));
        ch.publish(
          ASSESSMENT_TOPOLOGY.exchange,
          rk,
          body,
          { persistent: true, contentType: "application/json" },
          (err) => (err ? reject(err) : resolve()),
        );
      }),
    close: async () => {
      await conn.close();
    },
  };
}

/** Every message now in a queue, taken off it (acked). */
export async function drainQueue(
  url: string,
  queue: string,
): Promise<{ body: Buffer; headers: Record<string, unknown> }[]> {
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await ch.prefetch(1000);
  const out: { body: Buffer; headers: Record<string, unknown> }[] = [];
  for (;;) {
    const m = await ch.get(queue, { noAck: true });
    if (!m) break;
    out.push({ body: m.content, headers: (m.properties.headers ?? {}) as Record<string, unknown> });
  }
  await conn.close();
  return out;
}

/** Purges the assessment queues (between tests on one broker). */
export async function purgeQueues(url: string): Promise<void> {
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await declareAssessmentTopology(ch);
  for (const q of [ASSESSMENT_TOPOLOGY.tasks, ASSESSMENT_TOPOLOGY.results, ASSESSMENT_TOPOLOGY.deadLetterQueue])
    await ch.purgeQueue(q);
  await conn.close();
}
