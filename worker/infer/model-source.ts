// Where a pool's model comes from (DetectorPool spec.model.uri): a file on the model volume, or a download over
// http(s) into that volume, checked against spec.model.sha256 while it streams and kept there, so a restarted
// worker container (same pod, same volume) starts without fetching it again.
import { createHash } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { filePath, isHttpUrl, redact } from "../ingest/source-url.ts";
import { ModelError } from "./session.ts";

export type ModelSourceOptions = {
  /** Where downloads go (the worker's model volume). */
  cacheDir: string;
  sha256?: string;
  timeoutMs?: number;
  /** From the pool's model.credentialsSecretRef: a Bearer token, or Basic user and password. */
  credentials?: ModelCredentials;
};

export type ModelCredentials = {
  token?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
};

function authorization(c: ModelCredentials | undefined): Record<string, string> {
  if (c?.token) return { authorization: `Bearer ${c.token}` };
  if (c?.username !== undefined)
    return { authorization: `Basic ${Buffer.from(`${c.username}:${c.password ?? ""}`).toString("base64")}` };
  return {};
}

/** What a log line or a condition may say about a model URL: no credentials, no query (tokens live there). */
export const safeModelUri = (uri: string) => redact(uri).replace(/\?.*$/, "?…");

/** A local path to the model, downloading it first when the URI is http(s). */
export async function resolveModelUri(uri: string, opts: ModelSourceOptions): Promise<string> {
  if (!isHttpUrl(uri)) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !uri.startsWith("file://"))
      throw new ModelError(`model.uri ${safeModelUri(uri)}: only file:// and http(s):// models can be loaded`);
    return filePath(uri);
  }
  const name = `${opts.sha256 ?? createHash("sha256").update(uri).digest("hex")}.onnx`;
  const dest = join(opts.cacheDir, name);
  if (existsSync(dest) && (!opts.sha256 || (await sha256Of(dest)) === opts.sha256)) return dest;

  await mkdir(opts.cacheDir, { recursive: true, mode: 0o700 });
  const tmp = `${dest}.${process.pid}.part`;
  const where = safeModelUri(uri);
  const url = new URL(uri);
  // The CRD refuses these too: credentials in the URL end up in clear text in the StatefulSet and in logs.
  if (url.username || url.password)
    throw new ModelError(
      `model.uri ${where}: must not carry credentials; reference a Secret in model.credentialsSecretRef`,
    );
  const headers = authorization(opts.credentials);
  let res: Response;
  try {
    res = await fetch(url, { headers, signal: AbortSignal.timeout(opts.timeoutMs ?? 600_000) });
  } catch (err) {
    throw new ModelError(`model.uri ${where}: download failed (${causeOf(err)})`);
  }
  if (!res.ok || !res.body) throw new ModelError(`model.uri ${where}: HTTP ${res.status} ${res.statusText}`.trim());
  const hash = createHash("sha256");
  try {
    await pipeline(
      Readable.fromWeb(res.body),
      new Transform({
        transform(chunk, _enc, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      }),
      createWriteStream(tmp),
    );
  } catch (err) {
    await rm(tmp, { force: true });
    throw new ModelError(`model.uri ${where}: download failed (${causeOf(err)})`);
  }
  const actual = hash.digest("hex");
  if (opts.sha256 && actual !== opts.sha256) {
    await rm(tmp, { force: true });
    throw new ModelError(`model.uri ${where}: downloaded sha256 is ${actual}, model.sha256 says ${opts.sha256}`);
  }
  await rename(tmp, dest); // whole files only: a crash mid-download leaves a .part, never a truncated model
  return dest;
}

const sha256Of = async (path: string) =>
  createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
/** A short cause, with any URL in it redacted the same way (an undici message may quote the URL). */
const causeOf = (err: unknown) => {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return redact(e.cause?.code ?? e.cause?.message ?? e.message).replace(/\?\S*/g, "?…");
};
