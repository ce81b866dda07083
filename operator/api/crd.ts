// Turns a resource's zod schemas into a structural CustomResourceDefinition (apiextensions.k8s.io/v1).
import { z } from "zod";
import { GROUP, VERSION } from "./meta.ts";
import type { ResourceDef } from "./resources.ts";

type Json = Record<string, unknown>;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/**
 * zod emits a few things a structural schema forbids or that only add noise:
 * JSON-Schema-only keys, the int bounds zod adds to every z.int(), and typed anyOf branches
 * (allowed only in the exact int-or-string form).
 */
function structural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(structural);
  if (node === null || typeof node !== "object") return node;
  const src = node as Json;
  if (src["x-kubernetes-int-or-string"]) {
    const out: Json = { "x-kubernetes-int-or-string": true, anyOf: [{ type: "integer" }, { type: "string" }] };
    if (src.description) out.description = src.description;
    return out;
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(src)) {
    if (k === "$schema" || k === "id" || k === "propertyNames") continue;
    if (src.type === "integer" && (k === "minimum" || k === "maximum") && Math.abs(v as number) === MAX_SAFE) continue;
    out[k] = structural(v);
  }
  if (out.type === "integer" && out.format === undefined) out.format = "int64";
  return out;
}

export function openApiSchema(schema: z.ZodType): Json {
  return structural(z.toJSONSchema(schema, { target: "openapi-3.0", io: "input", unrepresentable: "throw" })) as Json;
}

export function crdFor(def: ResourceDef): Json {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${def.plural}.${GROUP}`, labels: { "app.kubernetes.io/part-of": "vigil" } },
    spec: {
      group: GROUP,
      scope: "Namespaced",
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: ["vigil"],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: openApiSchema(def.spec),
                status: openApiSchema(def.status),
              },
              ...(def.rootValidations ? { "x-kubernetes-validations": def.rootValidations } : {}),
            },
          },
        },
      ],
    },
  };
}
