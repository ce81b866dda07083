import { describe, expect, it } from "vitest";
import {
  crdSchemas,
  DEFINITIONS_FILE,
  openapiV2Schemas,
  schemaFileName,
  strictSchema,
} from "../../hack/kubeconform-schemas.ts";

describe("schemaFileName: kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json", () => {
  it.each([
    ["Deployment", "apps/v1", "deployment-apps-v1.json"],
    ["Service", "v1", "service-v1.json"],
    ["ServiceMonitor", "monitoring.coreos.com/v1", "servicemonitor-monitoring-v1.json"],
    ["DetectorPool", "vigil.dev/v1alpha1", "detectorpool-vigil-v1alpha1.json"],
    [
      "ValidatingAdmissionPolicy",
      "admissionregistration.k8s.io/v1",
      "validatingadmissionpolicy-admissionregistration-v1.json",
    ],
  ])("%s %s → %s", (kind, apiVersion, file) => {
    expect(schemaFileName(kind, apiVersion)).toBe(file);
  });
});

describe("strictSchema", () => {
  it("closes every object that lists properties, the root and nested ones, through arrays and maps", () => {
    const s = strictSchema({
      type: "object",
      properties: {
        spec: {
          type: "object",
          properties: { items: { type: "array", items: { type: "object", properties: { a: { type: "string" } } } } },
        },
        labels: { type: "object", additionalProperties: { type: "object", properties: { b: { type: "string" } } } },
      },
    }) as any;
    expect(s.additionalProperties).toBe(false);
    expect(s.properties.spec.additionalProperties).toBe(false);
    expect(s.properties.spec.properties.items.items.additionalProperties).toBe(false);
    // A map stays a map; its values' schema is closed.
    expect(s.properties.labels.additionalProperties.additionalProperties).toBe(false);
  });

  it("leaves open what the API keeps open (x-kubernetes-preserve-unknown-fields) and objects without properties", () => {
    const s = strictSchema({
      type: "object",
      properties: {
        raw: {
          type: "object",
          "x-kubernetes-preserve-unknown-fields": true,
          properties: { known: { type: "string" } },
        },
        metadata: { type: "object" },
      },
    }) as any;
    expect(s.properties.raw.additionalProperties).toBeUndefined();
    expect(s.properties.metadata.additionalProperties).toBeUndefined();
  });

  it("treats a field named like a keyword as a field (a CRD's own JSONSchemaProps has `properties`)", () => {
    const s = strictSchema({
      type: "object",
      properties: { properties: { type: "object", additionalProperties: { type: "string" } } },
    }) as any;
    expect(Object.keys(s.properties)).toEqual(["properties"]);
    expect(s.properties.properties.additionalProperties).toEqual({ type: "string" });
  });

  it("makes int-or-string a string or an integer, and nullable a null-or-type", () => {
    expect(strictSchema({ type: "string", format: "int-or-string" })).toEqual({
      oneOf: [{ type: "string" }, { type: "integer" }],
    });
    expect(strictSchema({ type: "string", nullable: true }).type).toEqual(["string", "null"]);
  });
});

describe("openapiV2Schemas", () => {
  const doc = {
    definitions: {
      "io.k8s.api.apps.v1.Deployment": {
        type: "object",
        properties: { spec: { $ref: "#/definitions/io.k8s.api.apps.v1.DeploymentSpec" } },
        "x-kubernetes-group-version-kind": [{ group: "apps", version: "v1", kind: "Deployment" }],
      },
      "io.k8s.api.apps.v1.DeploymentSpec": { type: "object", properties: { replicas: { type: "integer" } } },
      "io.k8s.apimachinery.pkg.api.resource.Quantity": { type: "string", description: "q" },
      "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions": {
        type: "object",
        properties: {},
        "x-kubernetes-group-version-kind": [
          { group: "", version: "v1", kind: "DeleteOptions" },
          { group: "apps", version: "v1", kind: "DeleteOptions" },
        ],
      },
    },
  };

  it("writes one $ref file per resource kind into one shared, strict definitions file", () => {
    const files = openapiV2Schemas(doc);
    expect([...files.keys()].sort()).toEqual([DEFINITIONS_FILE, "deployment-apps-v1.json"]);
    expect(files.get("deployment-apps-v1.json")).toEqual({
      $ref: `${DEFINITIONS_FILE}#/definitions/io.k8s.api.apps.v1.Deployment`,
    });
    const defs = (files.get(DEFINITIONS_FILE) as any).definitions;
    expect(defs["io.k8s.api.apps.v1.DeploymentSpec"].additionalProperties).toBe(false);
    // `cpu: 1` is a valid quantity to the apiserver.
    expect(defs["io.k8s.apimachinery.pkg.api.resource.Quantity"]).toEqual({
      description: "q",
      oneOf: [{ type: "string" }, { type: "number" }],
    });
  });
});

describe("crdSchemas", () => {
  it("writes each version of each CRD in the text, and ignores other documents", () => {
    const text = `apiVersion: v1
kind: ConfigMap
metadata: {name: x}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor}
  versions:
    - name: v1
      schema:
        openAPIV3Schema: {type: object, properties: {spec: {type: object, properties: {a: {type: string}}}}}
    - name: v1alpha1
      schema:
        openAPIV3Schema: {type: object}
`;
    const files = crdSchemas(text);
    expect([...files.keys()]).toEqual(["servicemonitor-monitoring-v1.json", "servicemonitor-monitoring-v1alpha1.json"]);
    expect((files.get("servicemonitor-monitoring-v1.json") as any).properties.spec.additionalProperties).toBe(false);
  });
});
