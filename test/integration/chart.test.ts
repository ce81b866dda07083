// The Helm chart, rendered by the real helm CLI (hack/helm.sh) and applied to the real apiserver: every object
// is accepted, the RBAC is exactly charts/vigil/files/, the operator's pod passes the `restricted` Pod Security
// Standard as the apiserver's PodSecurity admission enforces it, and its environment is what operator/config.ts takes.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  AuthorizationV1Api,
  type KubernetesObject,
  RbacAuthorizationV1Api,
  type V1Deployment,
  type V1Pod,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { leaseNamespace, loadOperatorEnv } from "../../operator/config.ts";
import { apiMessage, type Clients } from "../../operator/kube/client.ts";
import { admin, freshNamespace, ROOT, waitFor } from "../setup/kube.ts";

type Obj = KubernetesObject & Record<string, any>;

const CHART = join(ROOT, "charts", "vigil");
const run = promisify(execFile);
/** hack/helm.sh: the first call in a fresh cache builds helm from its Go module (minutes on 2 cores). */
const helm = async (...args: string[]) =>
  (await run("bash", [join(ROOT, "hack", "helm.sh"), ...args], { cwd: ROOT, maxBuffer: 16 << 20 })).stdout;
const rules = (file: string) => parse(readFileSync(join(CHART, "files", file), "utf8"));

let c: Clients;
let ns: string; // also the release name, so the cluster-scoped objects are this test's own
let objects: Obj[];
const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
const deployment = (component: string) =>
  byKind("Deployment").find((d) => d.metadata?.name === `${ns}-${component}`) as V1Deployment & Obj;
const one = (kind: string) => {
  const all = byKind(kind);
  expect(all, kind).toHaveLength(1);
  return all[0]!;
};

beforeAll(async () => {
  c = admin();
  await helm("version"); // builds helm once; everything after is fast
  ns = await freshNamespace(c, "vigil");
  const out = await helm("template", ns, CHART, "--namespace", ns);
  objects = parseAllDocuments(out)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}, 600_000);

afterAll(async () => {
  // Namespaced objects go with the namespace; the cluster-scoped ones would outlive a kept cluster.
  for (const o of objects ?? []) {
    if (!o.metadata?.namespace) await c.objects.delete(o).catch(() => undefined);
  }
});

describe("charts/vigil", () => {
  it("passes helm lint", { timeout: 600_000 }, async () => {
    const out = await helm("lint", "--strict", CHART);
    expect(out).toContain("1 chart(s) linted, 0 chart(s) failed");
  });

  it("renders the operator's objects, cluster-scoped ones named after the release", () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata?.name}`).sort()).toEqual(
      [
        `ClusterRole/${ns}-operator`,
        `ClusterRoleBinding/${ns}-operator`,
        `Deployment/${ns}-operator`,
        `Deployment/${ns}-alarms`,
        `Service/${ns}-alarms-metrics`,
        `ServiceAccount/${ns}-alarms`,
        `PersistentVolumeClaim/${ns}-clips`,
        `Role/${ns}-operator`,
        `RoleBinding/${ns}-operator`,
        "Role/vigil-worker",
        "RoleBinding/vigil-worker",
        `Service/${ns}-operator-metrics`,
        `ServiceAccount/${ns}-operator`,
        "ServiceAccount/vigil-worker",
        `ValidatingAdmissionPolicy/${ns}-worker-tokens`,
        `ValidatingAdmissionPolicyBinding/${ns}-worker-tokens`,
      ].sort(),
    );
    for (const o of objects) {
      const clusterScoped = o.kind?.startsWith("Cluster") || o.kind?.startsWith("ValidatingAdmissionPolicy");
      expect(o.metadata?.namespace, `${o.kind} namespace`).toBe(clusterScoped ? undefined : ns);
    }
  });

  it("applies, every object, to the real apiserver", async () => {
    for (const o of objects) await c.objects.create(o);
    for (const o of objects) {
      const back = await c.objects.read({
        apiVersion: o.apiVersion!,
        kind: o.kind!,
        metadata: { name: o.metadata!.name!, namespace: o.metadata?.namespace },
      });
      expect(back.metadata?.uid, `${o.kind}/${o.metadata?.name}`).toBeTruthy();
    }
  });

  it("grants exactly files/operator-*-rules.yaml, and the Lease only in the release namespace", async () => {
    const rbac = c.kc.makeApiClient(RbacAuthorizationV1Api);
    expect(one("ClusterRole").rules).toEqual(rules("operator-cluster-rules.yaml"));
    const role = (name: string) => byKind("Role").find((r) => r.metadata?.name === name)!;
    expect(role(`${ns}-operator`).rules).toEqual(rules("operator-namespace-rules.yaml"));
    expect(role("vigil-worker").rules).toEqual(rules("worker-namespace-rules.yaml"));
    expect((await rbac.readClusterRole({ name: `${ns}-operator` })).rules).toEqual(
      rules("operator-cluster-rules.yaml"),
    );

    // The bindings reach the operator's ServiceAccount: ask the apiserver's authorizer.
    const sa = deployment("operator").spec?.template.spec?.serviceAccountName;
    expect(sa).toBe(`${ns}-operator`);
    const authz = c.kc.makeApiClient(AuthorizationV1Api);
    const can = async (verb: string, group: string, resource: string, namespace?: string) =>
      (
        await authz.createSubjectAccessReview({
          body: {
            spec: {
              user: `system:serviceaccount:${ns}:${sa}`,
              resourceAttributes: { verb, group, resource, namespace },
            },
          },
        })
      ).status?.allowed ?? false;
    // RBAC is cached by the authorizer's informers: wait for the new bindings to show.
    await waitFor("the operator's bindings to take effect", () => can("update", "coordination.k8s.io", "leases", ns));
    expect(await can("patch", "vigil.dev", "detectorpools", "elsewhere")).toBe(true);
    expect(await can("create", "apps", "statefulsets", "elsewhere")).toBe(true);
    expect(await can("update", "coordination.k8s.io", "leases", "elsewhere")).toBe(false);
    // Secrets: `get` only (a Role it writes for a worker may grant only what it holds), never list or watch.
    expect(await can("get", "", "secrets", ns)).toBe(true);
    expect(await can("list", "", "secrets", ns)).toBe(false);
    expect(await can("watch", "", "secrets", ns)).toBe(false);
    // The worker ServiceAccount reads no Secret at all (its own per-worker identity does: worker-kube.test.ts).
    const worker = async (verb: string, group: string, resource: string, subresource?: string) =>
      (
        await authz.createSubjectAccessReview({
          body: {
            spec: {
              user: `system:serviceaccount:${ns}:vigil-worker`,
              resourceAttributes: { verb, group, resource, namespace: ns, ...(subresource ? { subresource } : {}) },
            },
          },
        })
      ).status?.allowed ?? false;
    await waitFor("the worker's bindings to take effect", () => worker("list", "vigil.dev", "cameradetections"));
    expect(await worker("get", "", "secrets")).toBe(false);
    expect(await worker("create", "", "serviceaccounts", "token")).toBe(true);
  });

  it("sets an environment operator/config.ts accepts, naming the rendered worker ServiceAccount", async () => {
    const pod = deployment("operator").spec!.template.spec!;
    const container = pod.containers[0]!;
    expect(container.args).toEqual(["operator"]);
    const env = Object.fromEntries(
      (container.env ?? []).map((e) => [
        e.name,
        e.value ?? (e.valueFrom?.fieldRef?.fieldPath === "metadata.namespace" ? ns : `from:${e.name}`),
      ]),
    );
    const cfg = loadOperatorEnv(env);
    expect(leaseNamespace(cfg)).toBe(ns);
    expect(cfg.VIGIL_HEALTH_PORT).toBe(8081);
    expect(container.ports).toEqual([{ name: "http-metrics", containerPort: 8081, protocol: "TCP" }]);
    expect(cfg.VIGIL_WATCH_NAMESPACE).toBeUndefined();
    expect(cfg.VIGIL_WORKER_SERVICE_ACCOUNT).toBe("vigil-worker");
    expect(byKind("ServiceAccount").map((s) => s.metadata?.name)).toContain(cfg.VIGIL_WORKER_SERVICE_ACCOUNT);
    expect(cfg.VIGIL_WORKER_GRACE_MS).toBe(20_000);
    // Pools may run the chart's own repository's images, nothing else by default.
    expect(cfg.VIGIL_ALLOWED_WORKER_IMAGES).toEqual(["ghcr.io/vigil-dev/vigil"]);
    // The alarm service's ServiceAccount gets, per pool, a Role naming its webhook Secrets (alarm-access.ts).
    expect(cfg.VIGIL_ALARMS_SERVICE_ACCOUNT).toBe(`${ns}/${ns}-alarms`);
    // Workers' connection URLs by Secret name (connections.*), never a value.
    expect([cfg.VIGIL_RABBITMQ_SECRET, cfg.VIGIL_REDIS_SECRET]).toEqual(["vigil-rabbitmq", "vigil-redis"]);
    // NODE_OPTIONS only takes an allow-list of V8 flags; this Node must start with it.
    await run(process.execPath, ["-e", ""], { env: { ...process.env, NODE_OPTIONS: env.NODE_OPTIONS } });
  });

  it.each(["operator", "alarms"])(
    "runs its %s pod under the restricted Pod Security Standard (PodSecurity admission)",
    async (component) => {
      const nsObj = await c.core.readNamespace({ name: ns });
      nsObj.metadata!.labels = { ...nsObj.metadata!.labels, "pod-security.kubernetes.io/enforce": "restricted" };
      await c.core.replaceNamespace({ name: ns, body: nsObj });

      const template = deployment(component).spec!.template;
      let seq = 0;
      const pod = (mutate: (p: V1Pod) => void = () => {}): V1Pod => {
        const p: V1Pod = structuredClone({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: `${component}-pod-${seq++}`, namespace: ns, labels: template.metadata?.labels },
          spec: template.spec,
        });
        mutate(p);
        return p;
      };
      const create = async (p: V1Pod, dryRun?: string) => {
        try {
          await c.objects.create(p, undefined, dryRun);
          return "accepted";
        } catch (err) {
          return apiMessage(err);
        }
      };

      // The check can fail: without runAsNonRoot the same pod is refused (retried until the label is seen).
      const noNonRoot = (p: V1Pod) => delete p.spec!.securityContext!.runAsNonRoot;
      const refused = await waitFor("PodSecurity to enforce restricted", async () => {
        const r = await create(pod(noNonRoot), "All");
        return r === "accepted" ? undefined : r;
      });
      expect(refused).toMatch(/violates PodSecurity "restricted:latest": runAsNonRoot != true/);

      const good = pod();
      expect(await create(good)).toBe("accepted");
      const stored = await c.core.readNamespacedPod({ name: good.metadata!.name!, namespace: ns });
      expect(stored.spec?.securityContext?.runAsNonRoot).toBe(true);
      expect(stored.spec?.containers[0]?.securityContext?.readOnlyRootFilesystem).toBe(true);
    },
  );

  it("gives the alarm service its connections from Secrets only, the clip volume, and no permission of its own", () => {
    const d = deployment("alarms");
    expect(d.spec?.replicas).toBe(2);
    const pod = d.spec!.template.spec!;
    expect(pod.serviceAccountName).toBe(`${ns}-alarms`);
    const container = pod.containers[0]!;
    expect(container.args).toEqual(["alarms"]);
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e]));
    // URLs carry passwords: never a value in the manifest.
    expect(env.RABBITMQ_URL?.valueFrom?.secretKeyRef).toEqual({ name: "vigil-rabbitmq", key: "url" });
    expect(env.MYSQL_URL?.valueFrom?.secretKeyRef).toEqual({ name: "vigil-mysql", key: "url" });
    expect(env.VIGIL_CLIP_DIR?.value).toBe("/var/lib/vigil/clips");
    const clips = pod.volumes?.find((v) => v.name === "clips");
    expect(clips?.persistentVolumeClaim?.claimName).toBe(`${ns}-clips`);
    expect(one("PersistentVolumeClaim").spec.accessModes).toEqual(["ReadWriteMany"]);
    // No Role or binding names it in the chart: the operator writes one per pool, naming Secrets.
    const subjects = [...byKind("RoleBinding"), ...byKind("ClusterRoleBinding")].flatMap((b) => b.subjects ?? []);
    expect(subjects.map((s: Obj) => s.name)).not.toContain(`${ns}-alarms`);
  });

  it("ships the generated CRDs, byte for byte", () => {
    const generated = readdirSync(join(ROOT, "crds")).filter((f) => f.endsWith(".yaml"));
    expect(generated.length).toBeGreaterThan(0);
    expect(readdirSync(join(CHART, "crds")).sort()).toEqual(generated.sort());
    for (const f of generated)
      expect(readFileSync(join(CHART, "crds", f), "utf8"), f).toBe(readFileSync(join(ROOT, "crds", f), "utf8"));
  });
});
