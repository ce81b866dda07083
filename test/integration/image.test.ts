// The image hack/image.sh builds, run the way a container runtime would run it: the OCI tarball unpacked with umoci,
// its config's entrypoint and env, inside a chroot as its config's user, with /proc, /sys and /dev mounted in a
// private mount namespace (nothing leaks into the host's mounts, and they go when the process does). Needs root.
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import { ROOT } from "../setup/operator-env.ts";
import { FIXTURES } from "../setup/services.ts";

const descriptor = z.object({
  mediaType: z.string(),
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  size: z.number(),
  annotations: z.record(z.string(), z.string()).optional(),
});
const ociIndex = z.object({ schemaVersion: z.literal(2), manifests: z.array(descriptor) });
const ociManifest = z.object({ config: descriptor, layers: z.array(descriptor) });
const ociConfig = z.object({
  architecture: z.string(),
  os: z.string(),
  config: z.object({
    User: z.string(),
    Entrypoint: z.array(z.string()),
    Env: z.array(z.string()),
    WorkingDir: z.string().optional(),
  }),
});

const version = z
  .object({ version: z.string() })
  .parse(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"))).version;
const blob = (layout: string, digest: string) =>
  JSON.parse(readFileSync(join(layout, "blobs", ...digest.split(":")), "utf8"));
const mb = (bytes: number) => Math.round(bytes / 1e5) / 10;

let dir: string;
let layout: string;
let rootfs: string;
let tarball: string;
let index: z.infer<typeof ociIndex>;
let manifest: z.infer<typeof ociManifest>;
let config: z.infer<typeof ociConfig>;

/** Runs argv as the image would: PATH and the rest from the image's Env, as its User, chrooted into its rootfs. */
function inImage(argv: string[]): { code: number | null; stdout: string; stderr: string } {
  const mountAndChroot =
    'r=$1; shift; mount -t proc proc "$r/proc" && mount -t sysfs -o ro sysfs "$r/sys" && mount --bind /dev "$r/dev" ' +
    '&& exec chroot --userspec="$USERSPEC" "$r" "$@"';
  const env = Object.fromEntries(
    config.config.Env.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  const r = spawnSync(
    "unshare",
    ["--mount", "--propagation", "private", "--", "sh", "-c", mountAndChroot, "sh", rootfs, ...argv],
    { env: { ...env, USERSPEC: config.config.User }, encoding: "utf8", timeout: 120_000 },
  );
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the image (hack/image.sh)", { timeout: 180_000 }, () => {
  beforeAll(() => {
    expect(process.getuid?.(), "chroot and mount need root").toBe(0);
    const start = performance.now();
    // Reuses its output when no input changed since the last build.
    tarball = execFileSync("bash", [join(ROOT, "hack", "image.sh")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      timeout: 900_000,
    }).trim();
    const buildS = (performance.now() - start) / 1000;
    dir = mkdtempSync(join(tmpdir(), "vigil-image-"));
    layout = join(dir, "oci");
    mkdirSync(layout);
    execFileSync("tar", ["-xf", tarball, "-C", layout]);
    index = ociIndex.parse(JSON.parse(readFileSync(join(layout, "index.json"), "utf8")));
    const [only] = index.manifests;
    if (!only) throw new Error(`${tarball}: index.json lists no manifest`);
    manifest = ociManifest.parse(blob(layout, only.digest));
    config = ociConfig.parse(blob(layout, manifest.config.digest));
    execFileSync("umoci", ["unpack", "--image", `${layout}:${version}`, join(dir, "bundle")], { stdio: "ignore" });
    rootfs = join(dir, "bundle", "rootfs");
    const du = (p: string) => Number(execFileSync("du", ["-sb", p], { encoding: "utf8" }).split("\t")[0]);
    const layers = manifest.layers.map((l) => mb(l.size));
    console.log(
      JSON.stringify({
        imageMB: mb(statSync(tarball).size),
        layersMB: layers,
        unpackedMB: mb(du(rootfs)),
        hackImageShSeconds: Math.round(buildS * 10) / 10,
      }),
    );
  }, 1_000_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("is tagged with package.json's version, which is the chart's appVersion, and runs as uid 65532", () => {
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]?.annotations?.["org.opencontainers.image.ref.name"]).toBe(version);
    const chart = z
      .object({ appVersion: z.string() })
      .parse(parse(readFileSync(join(ROOT, "charts", "vigil", "Chart.yaml"), "utf8")));
    expect(chart.appVersion).toBe(version);
    expect(config.config.User).toBe("65532:65532");
    expect(config.config.Entrypoint).toEqual(["node", "/app/dist/vigil.js"]);
    expect([config.os, config.architecture]).toEqual(["linux", "amd64"]);
    expect(manifest.layers).toHaveLength(3); // system, node_modules, app
  });

  it("`vigil --version` in the chroot, as 65532, prints the version", () => {
    const id = inImage(["node", "-p", 'process.getuid() + ":" + process.getgid()']);
    expect(id.stdout.trim()).toBe("65532:65532");
    const r = inImage([...config.config.Entrypoint, "--version"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`vigil ${version}\n`);
  });

  it("`vigil detect` in the chroot, with the image's ffmpeg, finds the people in a frame of vtest.avi", () => {
    copyFileSync(join(FIXTURES, "vtest.avi"), join(rootfs, "tmp", "vtest.avi"));
    copyFileSync(join(FIXTURES, "yolov8n.onnx"), join(rootfs, "tmp", "yolov8n.onnx"));
    const probe = inImage([
      "ffprobe",
      "-v",
      "error",
      "-show_entries",
      "stream=width,height",
      "-of",
      "csv=p=0",
      "/tmp/vtest.avi",
    ]);
    expect(probe.stdout.trim()).toBe("768,576");
    const frame = inImage([
      "ffmpeg",
      "-v",
      "error",
      "-ss",
      "3",
      "-i",
      "/tmp/vtest.avi",
      "-frames:v",
      "1",
      "/tmp/frame.jpg",
    ]);
    expect(frame.stderr).toBe("");
    expect(statSync(join(rootfs, "tmp", "frame.jpg")).uid).toBe(65532);

    const r = inImage([
      ...config.config.Entrypoint,
      "detect",
      "--source",
      "/tmp/frame.jpg",
      "--model",
      "/tmp/yolov8n.onnx",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1); // one image, one frame
    const out = z
      .object({ frame: z.number(), detections: z.array(z.object({ class: z.string(), score: z.number() })) })
      .parse(JSON.parse(lines[0] ?? ""));
    const persons = out.detections.filter((d) => d.class === "person");
    console.log(JSON.stringify({ persons: persons.length, scores: persons.map((p) => p.score) }));
    // The same frame on the host finds 3 people (0.88, 0.79, 0.69).
    expect(persons.length).toBeGreaterThanOrEqual(2);
    for (const p of persons) expect(p.score).toBeGreaterThanOrEqual(0.5);
  });
});
