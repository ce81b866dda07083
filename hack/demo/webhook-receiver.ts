// The demo's webhook receiver (`npm run demo` starts it beside `vigil up`): listens at the url of the webhook Secret
// in the manifests file, verifies each request's Standard Webhooks signature with that Secret's key
// (verify-webhook.ts, node:crypto only), validates the body with Vigil's payload schema and prints one line per
// delivery. It answers 200 to a genuine delivery and 401 to anything else, and names a delivery whose webhook-id it
// has seen before a repeat (a receiver deduplicates on that id: HTTP cannot promise exactly once).
// A Secret whose url is not on this host is someone else's endpoint: then nothing is started.
//
//   node hack/demo/webhook-receiver.ts [-f hack/demo/cameras.yaml] [--secret demo-webhook] [--namespace default]
import { once } from "node:events";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { webhookPayload } from "../../alarms/webhook/payload.ts";
import { loadManifests } from "../../worker/manifests.ts";
import { verifyWebhook } from "./verify-webhook.ts";

const { values } = parseArgs({
  options: {
    file: { type: "string", short: "f", default: "hack/demo/cameras.yaml" },
    secret: { type: "string", default: "demo-webhook" },
    namespace: { type: "string", default: "default" },
  },
});
const where = `Secret ${values.namespace}/${values.secret}`;
const data = loadManifests(values.file).secrets?.get(`${values.namespace}/${values.secret}`);
if (!data?.url || !data.secret) {
  process.stderr.write(`webhook receiver: ${where} with keys url and secret is not in ${values.file}\n`);
  process.exit(1);
}
const url = new URL(data.url);
const host = url.hostname.replace(/^\[|\]$/g, "");
if (url.protocol !== "http:" || !["127.0.0.1", "localhost", "::1"].includes(host)) {
  process.stdout.write(`webhook receiver: ${where} points at ${url.host}, not this host; no local receiver\n`);
  process.exit(0);
}
const secret = data.secret;
const seen = new Set<string>();

const server = createServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  const answer = (status: number, line: string) => {
    process.stdout.write(`[webhook] ${line}\n`);
    res.writeHead(status, { "content-type": "text/plain" }).end(status === 200 ? "ok" : "no");
  };
  if (req.method !== "POST" || new URL(req.url ?? "/", url).pathname !== url.pathname)
    return answer(404, `${req.method} ${req.url}: not the webhook path ${url.pathname} (404)`);
  const v = verifyWebhook(secret, req.headers, raw, Math.floor(Date.now() / 1000));
  if (!v.ok) return answer(401, `REJECTED (401): ${v.reason}`);
  let body: unknown;
  try {
    body = JSON.parse(raw.toString("utf8"));
  } catch {
    return answer(400, `${v.id}: signed, but the body is not JSON (400)`);
  }
  const p = webhookPayload.safeParse(body);
  if (!p.success)
    return answer(
      400,
      `${v.id}: signed, but not an alarm payload: ${p.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")} (400)`,
    );
  const d = p.data.data;
  const media =
    p.data.type === "alarm.clip"
      ? `clip ${p.data.data.clip.path} (${p.data.data.clip.duration_seconds.toFixed(1)} s)`
      : `snapshot ${d.snapshot?.path ?? "none"}`;
  const repeat = seen.has(v.id) ? " REPEAT (same webhook-id: deduplicate)" : "";
  seen.add(v.id);
  answer(
    200,
    `${p.data.type} ${d.camera.id} ${d.rule} (${d.severity}) track ${d.track_id} at ${d.event_time}: ${media} · id ${v.id} · signature ok${repeat}`,
  );
});
server.listen(Number(url.port || 80), host);
try {
  await once(server, "listening");
} catch (err) {
  process.stderr.write(`webhook receiver: cannot listen at ${url.host}: ${(err as Error).message}\n`);
  process.exit(1);
}
process.stdout.write(`webhook receiver: listening at ${url.href}, verifying with ${where}\n`);
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.once(sig, () => {
    server.close();
    server.closeAllConnections();
  });
