// JSON schemas for kubeconform, made offline (hack/kubeconform.sh schemas): the built-in kinds from an apiserver's
// /openapi/v2, and custom resources from CRD files, converted as kubeconform's scripts/openapi2jsonschema.py does,
// but strict everywhere:
// - every object schema that lists `properties` gets `additionalProperties: false` (the root too), so an unknown or
//   misspelt field is an error, except where the API itself keeps unknown fields (x-kubernetes-preserve-unknown-fields);
// - `format: int-or-string` becomes string-or-integer, as in the script;
// - the built-in Quantity (`type: string` in /openapi/v2) becomes string-or-number: the apiserver takes `cpu: 1`;
// - `nullable: true` (CRDs) allows null, which JSON Schema draft 4 (kubeconform's default) knows only as a type.
// Files are named as kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` template expects
// (deployment-apps-v1.json, service-v1.json, servicemonitor-monitoring-v1.json); a built-in kind's file `$ref`s the
// one shared _definitions.json, which keeps the schemas ~2 MB instead of one copy of PodSpec per kind.
//
//   npx node hack/kubeconform-schemas.ts --out DIR [--kubeconfig FILE] [CRD.yaml ...]
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";

export type Schema = { [key: string]: unknown };
type Gvk = { group: string; version: string; kind: string };

export const DEFINITIONS_FILE = "_definitions.json";
const QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/** kubeconform's file name for a kind (pkg/registry/registry.go schemaPath, with `{{ .ResourceKind }}{{ .KindSuffix }}.json`). */
export function schemaFileName(kind: string, apiVersion: string): string {
  const [groupOrVersion, version] = apiVersion.split("/") as [string, string | undefined];
  const suffix = `-${(groupOrVersion.split(".")[0] ?? "").toLowerCase()}${version ? `-${version.toLowerCase()}` : ""}`;
  return `${kind.toLowerCase()}${suffix}.json`;
}

const apiVersionOf = ({ group, version }: Gvk) => (group ? `${group}/${version}` : version);

const isObject = (v: unknown): v is Schema => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The schema made strict and draft-4 friendly (see the file's head). Walks the schema's structure (properties,
 * items, additionalProperties, the combinators, definitions), never its data: a field named "properties" (as in a
 * CRD's own JSONSchemaProps) is a property, not a keyword. Returns a new object.
 */
export function strictSchema(schema: Schema): Schema {
  if (schema.format === "int-or-string") return { oneOf: [{ type: "string" }, { type: "integer" }] };
  const out: Schema = { ...schema };
  const preserve = schema["x-kubernetes-preserve-unknown-fields"] === true;
  if (isObject(schema.properties)) {
    out.properties = Object.fromEntries(
      Object.entries(schema.properties).map(([k, v]) => [k, isObject(v) ? strictSchema(v) : v]),
    );
    if (!("additionalProperties" in schema) && !preserve) out.additionalProperties = false;
  }
  if (isObject(schema.additionalProperties)) out.additionalProperties = strictSchema(schema.additionalProperties);
  if (isObject(schema.items)) out.items = strictSchema(schema.items);
  else if (Array.isArray(schema.items)) out.items = schema.items.map((s) => (isObject(s) ? strictSchema(s) : s));
  for (const key of ["allOf", "anyOf", "oneOf"])
    if (Array.isArray(schema[key]))
      out[key] = (schema[key] as unknown[]).map((s) => (isObject(s) ? strictSchema(s) : s));
  if (isObject(schema.not)) out.not = strictSchema(schema.not);
  if (isObject(schema.definitions))
    out.definitions = Object.fromEntries(
      Object.entries(schema.definitions).map(([k, v]) => [k, isObject(v) ? strictSchema(v) : v]),
    );
  if (schema.nullable === true && typeof schema.type === "string") out.type = [schema.type, "null"];
  return out;
}

/**
 * The built-in kinds of an /openapi/v2 document: one file per group-version-kind, each a `$ref` into the shared
 * definitions. Definitions with several GVKs (DeleteOptions, WatchEvent: one per group) are not resources; skipped.
 */
export function openapiV2Schemas(doc: { definitions: Record<string, Schema> }): Map<string, Schema> {
  const definitions = Object.fromEntries(Object.entries(doc.definitions).map(([k, v]) => [k, strictSchema(v)]));
  const quantity = definitions[QUANTITY];
  if (quantity)
    definitions[QUANTITY] = { ...quantity, type: undefined, oneOf: [{ type: "string" }, { type: "number" }] };
  const files = new Map<string, Schema>([[DEFINITIONS_FILE, { definitions }]]);
  for (const [name, def] of Object.entries(doc.definitions)) {
    const gvks = def["x-kubernetes-group-version-kind"] as Gvk[] | undefined;
    const gvk = gvks?.length === 1 ? gvks[0] : undefined;
    if (!gvk) continue;
    const file = schemaFileName(gvk.kind, apiVersionOf(gvk));
    // Two groups whose first labels agree would share a file name: kubeconform could not tell them apart either.
    if (files.has(file)) throw new Error(`${file}: two kinds map to this file (${name})`);
    files.set(file, { $ref: `${DEFINITIONS_FILE}#/definitions/${name}` });
  }
  return files;
}

type Crd = {
  kind?: string;
  spec?: {
    group: string;
    names: { kind: string };
    versions?: { name: string; schema?: { openAPIV3Schema?: Schema } }[];
  };
};

/** One file per served version of each CustomResourceDefinition in the YAML text (other documents are ignored). */
export function crdSchemas(yamlText: string): Map<string, Schema> {
  const files = new Map<string, Schema>();
  for (const d of parseAllDocuments(yamlText)) {
    const crd = d.toJS() as Crd | null;
    if (crd?.kind !== "CustomResourceDefinition" || !crd.spec) continue;
    for (const v of crd.spec.versions ?? []) {
      const schema = v.schema?.openAPIV3Schema;
      if (!schema) continue;
      files.set(schemaFileName(crd.spec.names.kind, `${crd.spec.group}/${v.name}`), strictSchema(schema));
    }
  }
  return files;
}

/** GET a path of the kubeconfig's cluster (its TLS and credentials), as JSON. */
export async function getJson(kc: KubeConfig, path: string): Promise<unknown> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const opts: { headers?: Record<string, string>; ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  await kc.applyToHTTPSOptions(opts);
  const url = new URL(path, cluster.server);
  return new Promise((resolve, reject) => {
    const req = request(url, { ...opts, headers: { ...opts.headers, accept: "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: ${res.statusCode} ${body.slice(0, 200)}`));
        else resolve(JSON.parse(body));
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Writes the built-in kinds from the cluster's /openapi/v2, then the CRD files' kinds (they win), into `out`. */
export async function writeSchemas(kc: KubeConfig, out: string, crdFiles: string[]): Promise<string[]> {
  const files = openapiV2Schemas((await getJson(kc, "/openapi/v2")) as { definitions: Record<string, Schema> });
  // The apiserver publishes installed CRDs in /openapi/v2 too, converted lossily (nullable and the like dropped):
  // the CRD files' own schemas replace them.
  for (const f of crdFiles) for (const [name, s] of crdSchemas(readFileSync(f, "utf8"))) files.set(name, s);
  mkdirSync(out, { recursive: true });
  for (const [name, s] of files) writeFileSync(join(out, name), JSON.stringify(s));
  return [...files.keys()].sort();
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { out: { type: "string" }, kubeconfig: { type: "string" } },
  });
  if (!values.out) throw new Error("usage: kubeconform-schemas.ts --out DIR [--kubeconfig FILE] [CRD.yaml ...]");
  const kc = new KubeConfig();
  const kubeconfig = values.kubeconfig ?? process.env.KUBECONFIG;
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  const written = await writeSchemas(kc, values.out, positionals);
  process.stderr.write(`[kubeconform] ${written.length} schema files in ${values.out}\n`);
}
