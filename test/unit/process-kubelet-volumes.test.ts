import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { identity } from "../setup/kubelet/security.ts";
import {
  containerMounts,
  podVolumes,
  renderFiles,
  SERVICE_ACCOUNT_MOUNT,
  tokenSources,
  volumeReferences,
} from "../setup/kubelet/volumes.ts";

const layout = { podDir: "/state/pods/p1", claimDir: (c: string) => `/state/claims/ns/${c}` };
const image = "ghcr.io/vigil-dev/vigil:0.1.0";

function pod(over: Partial<NonNullable<V1Pod["spec"]>> = {}): V1Pod {
  return {
    metadata: { name: "w-0", namespace: "ns", uid: "u1" },
    spec: {
      containers: [
        {
          name: "worker",
          image,
          volumeMounts: [
            { name: "tmp", mountPath: "/tmp" },
            { name: "clips", mountPath: "/var/lib/vigil/clips" },
            { name: "cams", mountPath: "/etc/vigil/cameras.yaml", subPath: "cameras.yaml" },
            { name: "cfg", mountPath: "/etc/vigil" },
          ],
        },
      ],
      volumes: [
        { name: "tmp", emptyDir: { medium: "Memory" } },
        { name: "clips", persistentVolumeClaim: { claimName: "vigil-clips" } },
        { name: "cams", secret: { secretName: "cams", items: [{ key: "c.yaml", path: "cameras.yaml", mode: 0o400 }] } },
        { name: "cfg", configMap: { name: "cfg" } },
      ],
      ...over,
    },
  };
}

describe("volume plan", () => {
  it("maps each volume to a host dir and each mount to a bind mount, parents first, files read-only", () => {
    const p = pod();
    const vols = podVolumes(p, layout);
    expect(vols.map((v) => [v.name, v.kind, v.hostDir])).toEqual([
      ["tmp", "emptyDir", "/state/pods/p1/volumes/tmp"],
      ["clips", "pvc", "/state/claims/ns/vigil-clips"],
      ["cams", "files", "/state/pods/p1/volumes/cams"],
      ["cfg", "files", "/state/pods/p1/volumes/cfg"],
      ["kube-api-access-process-kubelet", "files", "/state/pods/p1/volumes/kube-api-access-process-kubelet"],
    ]);
    const mounts = containerMounts(p, p.spec!.containers[0]!, vols);
    expect(mounts).toEqual([
      { source: "/state/pods/p1/volumes/tmp", target: "/tmp", readOnly: false },
      { source: "/state/pods/p1/volumes/cfg", target: "/etc/vigil", readOnly: true },
      { source: "/state/pods/p1/volumes/cams/cameras.yaml", target: "/etc/vigil/cameras.yaml", readOnly: true },
      { source: "/state/claims/ns/vigil-clips", target: "/var/lib/vigil/clips", readOnly: false },
      {
        source: "/state/pods/p1/volumes/kube-api-access-process-kubelet",
        target: SERVICE_ACCOUNT_MOUNT,
        readOnly: true,
      },
    ]);
    expect([...volumeReferences(vols).secrets]).toEqual(["cams"]);
    expect([...volumeReferences(vols).configMaps].sort()).toEqual(["cfg", "kube-root-ca.crt"]);
  });

  it("adds no ServiceAccount volume when the pod opts out or already has one", () => {
    expect(podVolumes(pod({ automountServiceAccountToken: false }), layout)).toHaveLength(4);
    const p = pod();
    p.spec!.volumes!.push({ name: "sa", projected: { sources: [{ serviceAccountToken: { path: "token" } }] } });
    p.spec!.containers[0]!.volumeMounts!.push({ name: "sa", mountPath: `${SERVICE_ACCOUNT_MOUNT}/` });
    const vols = podVolumes(p, layout);
    expect(vols.map((v) => v.name)).not.toContain("kube-api-access-process-kubelet");
    expect(tokenSources(vols.find((v) => v.name === "sa")!)).toEqual([
      { kind: "token", path: "token", expirationSeconds: 3600, mode: 0o600 },
    ]);
  });

  it("renders Secret items, ConfigMap keys, the token and the namespace, as the kubelet writes them", () => {
    const p = pod();
    const vols = podVolumes(p, layout);
    const inputs = {
      secrets: new Map([["cams", { "c.yaml": Buffer.from("cameras: []"), other: Buffer.from("no") }]]),
      configMaps: new Map<string, Record<string, Buffer>>([
        ["cfg", { a: Buffer.from("1") }],
        ["kube-root-ca.crt", { "ca.crt": Buffer.from("PEM") }],
      ]),
      tokens: new Map([["token", "eyJ"]]),
    };
    const files = (name: string) =>
      renderFiles(p, vols.find((v) => v.name === name)!, inputs).map((f) => [
        f.path,
        f.content.toString(),
        f.mode.toString(8),
        f.ownedByUser,
      ]);
    expect(files("cams")).toEqual([["cameras.yaml", "cameras: []", "400", false]]);
    expect(files("cfg")).toEqual([["a", "1", "644", false]]);
    expect(files("kube-api-access-process-kubelet")).toEqual([
      ["token", "eyJ", "600", true],
      ["ca.crt", "PEM", "644", false],
      ["namespace", "ns", "644", false],
    ]);
    expect(files("tmp")).toEqual([]);
  });

  it("fails on a missing required Secret or key, skips optional ones", () => {
    const p = pod();
    const vols = podVolumes(p, layout);
    const cams = vols.find((v) => v.name === "cams")!;
    const empty = { secrets: new Map(), configMaps: new Map(), tokens: new Map() };
    expect(() => renderFiles(p, cams, empty)).toThrow(/volume cams: Secret "cams" not found/);
    expect(() => renderFiles(p, cams, { ...empty, secrets: new Map([["cams", { x: Buffer.from("") }]]) })).toThrow(
      /couldn't find key c.yaml in Secret cams/,
    );
    const optional = pod({ volumes: [{ name: "cams", secret: { secretName: "cams", optional: true } }] });
    const v = podVolumes(optional, layout).find((x) => x.name === "cams")!;
    expect(renderFiles(optional, v, empty)).toEqual([]);
  });

  it("rejects paths that leave the volume and volumes it cannot stand for", () => {
    const p = pod({ volumes: [{ name: "cams", secret: { secretName: "s", items: [{ key: "k", path: "../x" }] } }] });
    const v = podVolumes(p, layout)[0]!;
    const inputs = { secrets: new Map([["s", { k: Buffer.from("") }]]), configMaps: new Map(), tokens: new Map() };
    expect(() => renderFiles(p, v, inputs)).toThrow(/must be a relative path inside the volume/);
    expect(() => podVolumes(pod({ volumes: [{ name: "h", hostPath: { path: "/" } }] }), layout)).toThrow(
      /volume h: this volume type is not supported/,
    );
    const q = pod();
    q.spec!.containers[0]!.volumeMounts = [{ name: "nope", mountPath: "/x" }];
    expect(() => containerMounts(q, q.spec!.containers[0]!, podVolumes(q, layout))).toThrow(/no volume named nope/);
  });
});

describe("identity", () => {
  it("takes the container's user over the pod's over the image's, and fsGroup for volumes", () => {
    const p = pod({
      securityContext: { runAsUser: 1000, runAsGroup: 1001, fsGroup: 2000, supplementalGroups: [3000] },
    });
    const c = p.spec!.containers[0]!;
    expect(identity(p, c)).toEqual({
      uid: 1000,
      gid: 1001,
      groups: [2000, 3000],
      volumeGroup: 2000,
      readOnlyRootFilesystem: false,
    });
    c.securityContext = { runAsUser: 7, readOnlyRootFilesystem: true };
    expect(identity(p, c)).toMatchObject({ uid: 7, gid: 1001, readOnlyRootFilesystem: true });
    expect(identity(pod(), pod().spec!.containers[0]!)).toMatchObject({ uid: 65532, gid: 65532, groups: [] });
    c.securityContext = { runAsUser: 0, runAsNonRoot: true };
    expect(() => identity(p, c)).toThrow(/runAsNonRoot/);
  });
});
