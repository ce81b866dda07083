import { describe, expect, it } from "vitest";
import { allowedImagePrefixes, imageAllowed } from "../../operator/controllers/image-policy.ts";

describe("imageAllowed", () => {
  const allowed = ["ghcr.io/vigil-dev/vigil", "registry.example/ml/"];
  it.each([
    ["ghcr.io/vigil-dev/vigil", true],
    ["ghcr.io/vigil-dev/vigil:0.2.0", true],
    ["ghcr.io/vigil-dev/vigil@sha256:abc", true],
    ["ghcr.io/vigil-dev/vigil/cuda:1", false],
    ["registry.example/ml/worker:1", true],
    ["ghcr.io/vigil-dev/vigil-evil:1", false],
    ["ghcr.io/vigil-dev/vigi", false],
    ["docker.io/library/busybox", false],
    ["registry.example/mlx/worker", false],
  ])("%s → %s", (image, ok) => expect(imageAllowed(image, allowed)).toBe(ok));
  it("allows nothing with no prefixes, and ignores empty ones", () => {
    expect(imageAllowed("ghcr.io/vigil-dev/vigil", [])).toBe(false);
    expect(imageAllowed("anything", [""])).toBe(false);
  });
  it("always allows the operator's own worker image", () => {
    const p = allowedImagePrefixes(["registry.example/ml/", ""], "ghcr.io/vigil-dev/vigil:0.1.0");
    expect(p).toEqual(["ghcr.io/vigil-dev/vigil:0.1.0", "registry.example/ml/"]);
    expect(imageAllowed("ghcr.io/vigil-dev/vigil:0.1.0", p)).toBe(true);
    expect(imageAllowed("ghcr.io/vigil-dev/vigil:0.1.1", p)).toBe(false);
  });
});
