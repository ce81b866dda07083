// Where `vigil assessor` gets its pools: a small interface, so the Kubernetes source (AssessmentPools and their keys
// Secrets, watched) can replace the file one without the service knowing. The file source reads
// `--pool FILE`: YAML documents, each an AssessmentPool manifest plus a `keys` list (the Secret's format, inline),
// validated with the API's own zod schemas, errors naming the document and the field. The file is re-read when it
// changes; a change that fails validation is logged and the last good pools are kept. Keys are never logged.
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { Logger } from "pino";
import { parseAllDocuments } from "yaml";
import { assessmentKeys, assessmentPool } from "../operator/api/assessment-pool.ts";
import { DEFAULT_NAMESPACE } from "../worker/publish/camera-id.ts";
import type { PoolConfig } from "./pool/types.ts";

export interface PoolSource {
  current(): PoolConfig[];
  /** Called after `current()` changed. */
  on(event: "change", listener: () => void): void;
  close(): void;
}

const poolWithKeys = assessmentPool.extend({ keys: assessmentKeys });

export function parsePoolFile(text: string, file = "pool file"): PoolConfig[] {
  const out: PoolConfig[] = [];
  const seen = new Set<string>();
  parseAllDocuments(text).forEach((doc, i) => {
    if (doc.errors.length) throw new Error(`${file}: document ${i + 1}: ${doc.errors[0]?.message}`);
    const raw = doc.toJSON() as unknown;
    if (raw === null || raw === undefined) return;
    const parsed = poolWithKeys.safeParse(raw);
    if (!parsed.success) {
      const why = parsed.error.issues
        .slice(0, 5)
        // A key's value is never echoed: zod's messages name the field, not the input.
        .map((is) => `${is.path.map(String).join(".") || "(root)"}: ${is.message}`)
        .join("; ");
      throw new Error(`${file}: document ${i + 1}: ${why}`);
    }
    const p = parsed.data;
    const namespace = p.metadata.namespace || DEFAULT_NAMESPACE;
    const id = `${namespace}/${p.metadata.name}`;
    if (seen.has(id)) throw new Error(`${file}: document ${i + 1}: pool ${id} appears twice`);
    seen.add(id);
    out.push({
      namespace,
      name: p.metadata.name,
      ...(p.metadata.generation !== undefined ? { generation: p.metadata.generation } : {}),
      spec: p.spec,
      keys: p.keys,
    });
  });
  if (out.length === 0) throw new Error(`${file}: no AssessmentPool`);
  return out;
}

export function filePoolSource(file: string, log: Logger, pollMs = 1_000): PoolSource {
  let pools = parsePoolFile(readFileSync(file, "utf8"), file);
  let last = readFileSync(file, "utf8");
  const listeners: (() => void)[] = [];
  watchFile(file, { interval: pollMs, persistent: false }, () => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      log.warn({ file, err: (err as Error).message }, "pool file unreadable; keeping the last pools");
      return;
    }
    if (text === last) return;
    try {
      pools = parsePoolFile(text, file);
      last = text;
    } catch (err) {
      log.warn({ err: (err as Error).message }, "pool file invalid; keeping the last pools");
      return;
    }
    log.info({ file, pools: pools.map((p) => `${p.namespace}/${p.name}`) }, "pools reloaded");
    for (const l of listeners) l();
  });
  return {
    current: () => pools,
    on: (_event, listener) => void listeners.push(listener),
    close: () => unwatchFile(file),
  };
}
