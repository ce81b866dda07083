// A second (third…) process on the same alarm records, for the race tests: `node records-child.ts URL` reads a
// JSON job on stdin ({ migrate, startAt, messages }), applies the migrations if asked, waits for startAt (so the
// processes start together), admits every message at once and prints one JSON line of { id, kind, of }.

import type { AlarmMessage } from "../../alarms/messages.ts";
import { openRecords } from "../../alarms/records-open.ts";

type Job = { migrate: boolean; startAt: number; messages: AlarmMessage[] };

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const job = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Job;
const records = openRecords(process.argv[2] as string);
try {
  if (job.migrate) await records.migrate();
  await new Promise((r) => setTimeout(r, Math.max(0, job.startAt - Date.now())));
  const results = await Promise.all(
    job.messages.map(async (m) => {
      const r = await records.admit(m, Date.now());
      return { id: m.id, kind: r.kind, of: r.kind === "duplicate" ? r.of : null };
    }),
  );
  process.stdout.write(`${JSON.stringify(results)}\n`);
} finally {
  await records.close();
}
