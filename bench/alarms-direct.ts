// The baseline of `npm run bench -- alarms`, as its own process: the same two signed POSTs per alarm
// (alarm.raised, then alarm.clip, with the service's payloads, signing and HTTP client: alarms/webhook/deliver.ts)
// straight to the receiver, from `concurrency` loops at once, with no queue, no records and no dedup.
// Argument: JSON {url, secret, namespace, n, concurrency}. Prints one JSON line: {seconds, failed, cpu_s}.
import { deliver } from "../alarms/webhook/deliver.ts";
import { clipPayload, raisedPayload } from "../alarms/webhook/payload.ts";
import { alarmFixture } from "../test/setup/alarm-service.ts";

const o = JSON.parse(process.argv[2] ?? "{}") as {
  url: string;
  secret: string;
  namespace: string;
  n: number;
  concurrency: number;
};
const base = Date.now();
let next = 0;
let failed = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await Promise.all(
  Array.from({ length: o.concurrency }, async () => {
    while (next < o.n) {
      const i = next++;
      const m = alarmFixture(o.namespace, i + 1, { eventMs: base + i, dedupSeconds: 60 });
      const common = { url: o.url, secret: o.secret, alarmId: m.id };
      const raised = await deliver({ ...common, type: "alarm.raised", body: raisedPayload(m) });
      const eventMs = Date.parse(m.timestamp);
      const clip = await deliver({
        ...common,
        type: "alarm.clip",
        body: clipPayload(m, { readyMs: Date.now(), startMs: eventMs - m.clip.pre_seconds * 1000, durationSeconds: 2 }),
      });
      if (raised.result !== "delivered" || clip.result !== "delivered") failed++;
    }
  }),
);
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `${JSON.stringify({ seconds: (performance.now() - t0) / 1000, failed, cpu_s: (cpu.user + cpu.system) / 1e6 })}\n`,
);
