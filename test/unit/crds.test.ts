import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { cameraDetection } from "../../operator/api/camera-detection.ts";
import { detectorPool } from "../../operator/api/detector-pool.ts";
import { CHART_CRD_DIR, CRD_DIR, crdFileName, renderCrd } from "../../operator/api/gen-crds.ts";
import { RESOURCES } from "../../operator/api/resources.ts";

describe("generated CRDs", () => {
  it.each(RESOURCES.map((r) => [r.kind, r] as const))(
    "crds/ for %s matches the zod schema (run npm run gen:crds)",
    (_k, def) => {
      expect(readFileSync(join(CRD_DIR, crdFileName(def)), "utf8")).toBe(renderCrd(def));
    },
  );

  it.each(RESOURCES.map((r) => [r.kind, r] as const))(
    "charts/vigil/crds/ for %s matches the zod schema (run npm run gen:crds)",
    (_k, def) => {
      expect(readFileSync(join(CHART_CRD_DIR, crdFileName(def)), "utf8")).toBe(renderCrd(def));
    },
  );

  it("charts/vigil/crds/ holds exactly the generated CRDs", () => {
    expect(readdirSync(CHART_CRD_DIR).sort()).toEqual(RESOURCES.map(crdFileName).sort());
  });

  it("has no construct a structural schema forbids", () => {
    const text = RESOURCES.map(renderCrd).join("\n");
    for (const bad of ["$schema", "$ref", "additionalProperties: false", "oneOf", "allOf", "nullable"])
      expect(text).not.toContain(bad);
  });
});

describe("samples", () => {
  const dir = join(CRD_DIR, "samples");
  const samples = readdirSync(dir).map((f) => [f, parse(readFileSync(join(dir, f), "utf8"))] as const);

  it("are a pool and two cameras", () => {
    expect(samples.map(([, s]) => s.kind).sort()).toEqual(["CameraDetection", "CameraDetection", "DetectorPool"]);
  });

  it.each(samples)("%s validates with the same zod schema the operator uses", (_f, s) => {
    const schema = s.kind === "DetectorPool" ? detectorPool : cameraDetection;
    const r = schema.safeParse(s);
    expect(r.success ? "ok" : r.error.message).toBe("ok");
  });

  it("zod fills the same defaults the apiserver applies", () => {
    const cam = cameraDetection.parse(samples.find(([f]) => f === "camera-entrance.yaml")?.[1]);
    expect(cam.spec.detection.motionGate).toEqual({ enabled: true, threshold: 0.003, maxSkipSeconds: 2 });
    expect(cam.spec.paused).toBe(false);
    expect(cam.spec.source.credentialsSecretRef).toEqual({
      name: "camera-entrance-credentials",
      usernameKey: "username",
      passwordKey: "password",
    });
  });
});
