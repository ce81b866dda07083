import { describe, expect, it } from "vitest";
import { cameraId, cameraIdSchema, parseCameraId } from "../../worker/publish/camera-id.ts";

describe("camera ids", () => {
  it("are <namespace>/<name>, Kubernetes' own key form, with a missing namespace meaning default", () => {
    expect(cameraId("shop", "entrance")).toBe("shop/entrance");
    expect(cameraId(undefined, "entrance")).toBe("default/entrance");
    expect(cameraId("", "entrance")).toBe("default/entrance");
    // Names are DNS-1123 subdomains: dots are allowed there (never in namespaces).
    expect(cameraId("site-2", "gate.north")).toBe("site-2/gate.north");
  });

  it("parse back into namespace and name, and the same camera in two namespaces gets two ids", () => {
    expect(parseCameraId("shop/entrance")).toEqual({ namespace: "shop", name: "entrance" });
    expect(parseCameraId(cameraId("site-2", "gate.north"))).toEqual({ namespace: "site-2", name: "gate.north" });
    expect(cameraId("shop", "entrance")).not.toBe(cameraId("depot", "entrance"));
  });

  it("survive URL encoding as one path segment", () => {
    const id = cameraId("shop", "entrance");
    expect(encodeURIComponent(id)).toBe("shop%2Fentrance");
    expect(decodeURIComponent(encodeURIComponent(id))).toBe(id);
  });

  it("reject what is not a namespaced Kubernetes name, saying which part is wrong", () => {
    expect(() => cameraId("Shop", "entrance")).toThrow(/namespace "Shop": must be a DNS-1123 label/);
    expect(() => cameraId("a.b", "entrance")).toThrow(/namespace "a\.b": must be a DNS-1123 label/);
    expect(() => cameraId("shop", "Entrance Cam")).toThrow(/name "Entrance Cam": must be a DNS-1123 subdomain/);
    expect(() => cameraId("shop", "")).toThrow(/name "": must be a DNS-1123 subdomain/);
    expect(() => cameraId("x".repeat(64), "entrance")).toThrow(/namespace "x{64}": must be a DNS-1123 label/);
    expect(() => cameraId("shop", "x".repeat(254))).toThrow(/at most 253 characters/);
    expect(() => parseCameraId("entrance")).toThrow(/camera id "entrance": must be <namespace>\/<name>/);
    expect(() => parseCameraId("a/b/c")).toThrow(/camera id "a\/b\/c": must be <namespace>\/<name>/);
    expect(() => parseCameraId("/entrance")).toThrow(/namespace "": must be a DNS-1123 label/);
  });

  it("validate as a zod schema with the same message", () => {
    expect(cameraIdSchema.safeParse("shop/entrance").success).toBe(true);
    const bad = cameraIdSchema.safeParse("entrance");
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toMatch(/must be <namespace>\/<name>/);
    expect(cameraIdSchema.safeParse(7).success).toBe(false);
  });
});
