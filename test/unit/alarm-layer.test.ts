// vigil up's alarm layer: embedded defaults under the data directory, RabbitMQ and MySQL each on their own, and what
// each process's environment gets (and does not).
import { describe, expect, it } from "vitest";
import { describeAlarmLayer, planAlarmLayer, serviceAlarmEnv, workerAlarmEnv } from "../../single/alarm-layer.ts";
import type { LocalManifests } from "../../worker/manifests.ts";

const alarm = { clip: { preSeconds: 5, postSeconds: 5 }, dedupWindowSeconds: 60, minSeverity: "warning" as const };
const manifests = {
  pools: [],
  cameras: [
    { id: "default/a", spec: { alarm, paused: false } },
    { id: "shop/b", spec: { paused: false } },
    { id: "shop/c", spec: { alarm, paused: true } },
  ],
} as unknown as LocalManifests;

describe("planAlarmLayer", () => {
  it("defaults to embedded files under .vigil in the working directory", () => {
    const l = planAlarmLayer({}, "/home/u/site", manifests);
    expect(l).toEqual({
      dataDir: "/home/u/site/.vigil",
      queue: { kind: "embedded", path: "/home/u/site/.vigil/alarm-queue.sqlite" },
      records: { kind: "embedded", path: "/home/u/site/.vigil/alarms.sqlite" },
      clipDir: "/home/u/site/.vigil/clips",
      scratchDir: "/home/u/site/.vigil/scratch",
      recordsUrl: "/home/u/site/.vigil/alarms.sqlite",
      alarmCameras: ["default/a"],
    });
    expect(planAlarmLayer({ VIGIL_DATA_DIR: "data", VIGIL_CLIP_DIR: "/mnt/clips" }, "/srv", manifests)).toMatchObject({
      dataDir: "/srv/data",
      queue: { path: "/srv/data/alarm-queue.sqlite" },
      clipDir: "/mnt/clips",
      scratchDir: "/srv/data/scratch",
    });
  });

  it("takes RabbitMQ and MySQL independently, and never logs their credentials", () => {
    const rabbit = planAlarmLayer({ RABBITMQ_URL: "amqp://u:pw@mq:5673/v" }, "/s", manifests);
    expect(rabbit.queue).toEqual({ kind: "rabbitmq", url: "amqp://u:pw@mq:5673/v" });
    expect(rabbit.records.kind).toBe("embedded");
    const mysql = planAlarmLayer({ MYSQL_URL: "mysql://u:pw@db/vigil" }, "/s", manifests);
    expect(mysql.queue.kind).toBe("embedded");
    expect(mysql.records).toEqual({ kind: "mysql", url: "mysql://u:pw@db/vigil" });
    expect(mysql.recordsUrl).toBe("mysql://u:pw@db/vigil");
    const both = planAlarmLayer(
      { RABBITMQ_URL: "amqp://u:pw@mq", MYSQL_URL: "mysql://u:pw@db/vigil" },
      "/s",
      manifests,
    );
    const described = JSON.stringify(describeAlarmLayer(both));
    expect(described).not.toContain("pw");
    expect(describeAlarmLayer(both)).toEqual({
      queue: "rabbitmq mq:5672",
      records: "mysql db:3306/vigil",
      clips: "/s/.vigil/clips",
    });
    expect(() => planAlarmLayer({ MYSQL_URL: "postgres://x" }, "/s", manifests)).toThrow(
      "MYSQL_URL: must be a mysql:// URL",
    );
    expect(() => planAlarmLayer({ RABBITMQ_URL: "http://x" }, "/s", manifests)).toThrow(
      "RABBITMQ_URL: must be an amqp://",
    );
  });

  it("gives workers the queue and the clip store, not the database; the service everything, on loopback", () => {
    const env = { PATH: "/bin", MYSQL_URL: "mysql://u:pw@db/v", KUBECONFIG: "/k" };
    const l = planAlarmLayer(env, "/s", manifests);
    const w = workerAlarmEnv(l, env);
    expect(w).toMatchObject({
      PATH: "/bin",
      VIGIL_ALARM_QUEUE: "/s/.vigil/alarm-queue.sqlite",
      VIGIL_CLIP_DIR: "/s/.vigil/clips",
    });
    expect(w.VIGIL_CLIP_SCRATCH_DIR).toBe("/s/.vigil/scratch");
    expect(w.MYSQL_URL).toBeUndefined();
    const s = serviceAlarmEnv(l, env);
    expect(s).toMatchObject({
      MYSQL_URL: "mysql://u:pw@db/v",
      VIGIL_ALARM_QUEUE: "/s/.vigil/alarm-queue.sqlite",
      VIGIL_CLIP_DIR: "/s/.vigil/clips",
      VIGIL_ALARMS_PORT: "0",
      VIGIL_ALARMS_HOST: "127.0.0.1",
    });
    expect(s.VIGIL_ALARMS_DB).toBeUndefined();
    expect(s.KUBECONFIG).toBeUndefined();
    const r = planAlarmLayer({ RABBITMQ_URL: "amqp://mq" }, "/s", manifests);
    expect(workerAlarmEnv(r, { VIGIL_ALARM_QUEUE: "/stale" })).toMatchObject({ RABBITMQ_URL: "amqp://mq" });
    expect(workerAlarmEnv(r, { VIGIL_ALARM_QUEUE: "/stale" }).VIGIL_ALARM_QUEUE).toBeUndefined();
    expect(serviceAlarmEnv(r, { VIGIL_ALARMS_PORT: "9090" })).toMatchObject({
      RABBITMQ_URL: "amqp://mq",
      VIGIL_ALARMS_DB: "/s/.vigil/alarms.sqlite",
      VIGIL_ALARMS_PORT: "9090",
    });
  });
});
