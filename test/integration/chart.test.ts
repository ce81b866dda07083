// The Helm chart, rendered by the real helm CLI (hack/helm.sh) and applied to the real apiserver: every object
// is accepted, the RBAC is exactly charts/vigil/files/ (and enough: the gateway's catalog syncs as its own
// ServiceAccount), every pod passes the `restricted` Pod Security Standard as the apiserver's PodSecurity admission
// enforces it, the environments are what operator/config.ts and gateway/main.ts take, and values.schema.json turns a
// misspelt value into a failed `helm template` / `helm install`.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { AuthorizationV1Api, RbacAuthorizationV1Api, type V1Deployment, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse } from "yaml";
import { createKubeCatalog } from "../../gateway/catalog-kube.ts";
import { loadGatewayEnv } from "../../gateway/main.ts";
import { detectorPool } from "../../operator/api/detector-pool.ts";
import { leaseNamespace, loadOperatorEnv } from "../../operator/config.ts";
import { WORKER_PORT, workerStatefulSet } from "../../operator/controllers/workload.ts";
import { apiMessage, type Clients, kubeConfigWithToken } from "../../operator/kube/client.ts";
import { ALL_ON_VALUES, CHART, helm, helmError, named, type Obj, render } from "../setup/chart-render.ts";
import { admin, cameraManifest, createCr, freshNamespace, ROOT, resolveEnv, waitFor } from "../setup/kube.ts";

const rules = (file: string) => parse(readFileSync(join(CHART, "files", file), "utf8"));
const pkgVersion = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;

let c: Clients;
let ns: string; // also the release name, so the cluster-scoped objects are this test's own
let objects: Obj[]; // the default values
let fullNs: string;
let full: Obj[]; // charts/vigil/ci/all-on-values.yaml
const byKind = (kind: string, from = objects) => from.filter((o) => o.kind === kind);
const deployment = (component: string, from = objects, release = ns) =>
  named(from, "Deployment", `${release}-${component}`) as V1Deployment & Obj;
const podSpec = (component: string, from = objects, release = ns) =>
  deployment(component, from, release).spec!.template.spec!;

/** A worker pod template as the operator writes it (operator/controllers/workload.ts), for the chart's values. */
const workerTemplate = () =>
  workerStatefulSet(
    detectorPool.parse({
      apiVersion: "vigil.dev/v1alpha1",
      kind: "DetectorPool",
      metadata: { name: "gpu", namespace: ns, uid: "u1" },
      spec: { model: { uri: "https://models.example/yolov8n.onnx" } },
    }),
    {
      image: `ghcr.io/vigil-dev/vigil:${pkgVersion}`,
      replicas: 1,
      serviceAccountName: "vigil-worker",
      workerEnvSecret: "vigil-worker-env",
      clipClaim: `${ns}-clips`,
    },
  ).spec.template;

const can = async (user: string, verb: string, group: string, resource: string, namespace?: string) =>
  (
    await c.kc.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
      body: { spec: { user, resourceAttributes: { verb, group, resource, namespace } } },
    })
  ).status?.allowed ?? false;

beforeAll(async () => {
  c = admin();
  await helm("version"); // builds helm once; everything after is fast
  ns = await freshNamespace(c, "vigil");
  fullNs = await freshNamespace(c, "vigil-full");
  [objects, full] = await Promise.all([render(ns, ns), render(fullNs, fullNs, "-f", ALL_ON_VALUES)]);
}, 600_000);

afterAll(async () => {
  // Namespaced objects go with the namespace; the cluster-scoped ones would outlive a kept cluster.
  for (const o of [...(objects ?? []), ...(full ?? [])]) {
    if (!o.metadata?.namespace) await c.objects.delete(o).catch(() => undefined);
  }
});

describe("charts/vigil", () => {
  it("passes helm lint --strict, with the default values and with every optional part on", {
    timeout: 600_000,
  }, async () => {
    expect(await helm("lint", "--strict", CHART)).toContain("1 chart(s) linted, 0 chart(s) failed");
    expect(await helm("lint", "--strict", CHART, "-f", ALL_ON_VALUES)).toContain(
      "1 chart(s) linted, 0 chart(s) failed",
    );
  });

  it("renders each component's objects, cluster-scoped ones named after the release", () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata?.name}`).sort()).toEqual(
      [
        `ClusterRole/${ns}-operator`,
        `ClusterRoleBinding/${ns}-operator`,
        `Deployment/${ns}-operator`,
        `PodDisruptionBudget/${ns}-operator`,
        `Role/${ns}-operator`,
        `RoleBinding/${ns}-operator`,
        `Service/${ns}-operator-metrics`,
        `ServiceAccount/${ns}-operator`,
        `ClusterRole/${ns}-gateway`,
        `ClusterRoleBinding/${ns}-gateway`,
        `Deployment/${ns}-gateway`,
        `PodDisruptionBudget/${ns}-gateway`,
        `Service/${ns}-gateway`,
        `Service/${ns}-gateway-metrics`,
        `ServiceAccount/${ns}-gateway`,
        `Deployment/${ns}-alarms`,
        `PodDisruptionBudget/${ns}-alarms`,
        `Service/${ns}-alarms-metrics`,
        `ServiceAccount/${ns}-alarms`,
        `PersistentVolumeClaim/${ns}-clips`,
        "Role/vigil-worker",
        "RoleBinding/vigil-worker",
        "ServiceAccount/vigil-worker",
        `ValidatingAdmissionPolicy/${ns}-worker-tokens`,
        `ValidatingAdmissionPolicyBinding/${ns}-worker-tokens`,
      ].sort(),
    );
    // Every optional part adds the Ingress and a NetworkPolicy per component (the workers' too).
    const extra = full.map((o) => `${o.kind}/${o.metadata?.name}`).filter((k) => /^(Ingress|NetworkPolicy)\//.test(k));
    expect(extra.sort()).toEqual(
      [
        `Ingress/${fullNs}-gateway`,
        `NetworkPolicy/${fullNs}-alarms`,
        `NetworkPolicy/${fullNs}-assessor`,
        `NetworkPolicy/${fullNs}-gateway`,
        `NetworkPolicy/${fullNs}-operator`,
        `NetworkPolicy/${fullNs}-workers`,
      ].sort(),
    );
    for (const [release, from] of [
      [ns, objects],
      [fullNs, full],
    ] as const)
      for (const o of from) {
        const clusterScoped = o.kind?.startsWith("Cluster") || o.kind?.startsWith("ValidatingAdmissionPolicy");
        expect(o.metadata?.namespace, `${o.kind}/${o.metadata?.name} namespace`).toBe(
          clusterScoped ? undefined : release,
        );
      }
  });

  it("applies, every object of both renders, to the real apiserver", async () => {
    for (const o of [...objects, ...full]) await c.objects.create(o);
    for (const o of [...objects, ...full]) {
      const back = await c.objects.read({
        apiVersion: o.apiVersion!,
        kind: o.kind!,
        metadata: { name: o.metadata!.name!, namespace: o.metadata?.namespace },
      });
      expect(back.metadata?.uid, `${o.kind}/${o.metadata?.name}`).toBeTruthy();
    }
  });

  it("grants the operator exactly files/operator-*-rules.yaml", async () => {
    const rbac = c.kc.makeApiClient(RbacAuthorizationV1Api);
    expect(named(objects, "ClusterRole", `${ns}-operator`).rules).toEqual(rules("operator-cluster-rules.yaml"));
    expect(named(objects, "Role", `${ns}-operator`).rules).toEqual(rules("operator-namespace-rules.yaml"));
    expect(named(objects, "Role", "vigil-worker").rules).toEqual(rules("worker-namespace-rules.yaml"));
    expect((await rbac.readClusterRole({ name: `${ns}-operator` })).rules).toEqual(
      rules("operator-cluster-rules.yaml"),
    );

    // The bindings reach the operator's ServiceAccount: ask the apiserver's authorizer.
    const sa = podSpec("operator").serviceAccountName;
    expect(sa).toBe(`${ns}-operator`);
    const op = `system:serviceaccount:${ns}:${sa}`;
    // RBAC is cached by the authorizer's informers: wait for the new bindings to show.
    await waitFor("the operator's bindings to take effect", () =>
      can(op, "update", "coordination.k8s.io", "leases", ns),
    );
    expect(await can(op, "patch", "vigil.dev", "detectorpools", "elsewhere")).toBe(true);
    expect(await can(op, "create", "apps", "statefulsets", "elsewhere")).toBe(true);
    // The workers' Leases, in every pool's namespace (it creates them; `update` so that a worker's Role may grant it).
    expect(await can(op, "update", "coordination.k8s.io", "leases", "elsewhere")).toBe(true);
    expect(await can(op, "watch", "coordination.k8s.io", "leases", "elsewhere")).toBe(true);
    // Secrets: `get` only (a Role it writes for a worker may grant only what it holds), never list or watch.
    expect(await can(op, "get", "", "secrets", ns)).toBe(true);
    expect(await can(op, "list", "", "secrets", ns)).toBe(false);
    expect(await can(op, "watch", "", "secrets", ns)).toBe(false);
    // The worker ServiceAccount reads no Secret at all (its own per-worker identity does: worker-kube.test.ts).
    const worker = async (verb: string, group: string, resource: string, subresource?: string) =>
      (
        await c.kc.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
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
    const container = podSpec("operator").containers[0]!;
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
    expect(cfg.VIGIL_WORKER_TOLERATION_SECONDS).toBe(30);
    // Pools may run the chart's own repository's images, nothing else by default.
    expect(cfg.VIGIL_ALLOWED_WORKER_IMAGES).toEqual(["ghcr.io/vigil-dev/vigil"]);
    // The alarm service's ServiceAccount gets, per pool, a Role naming its webhook Secrets (alarm-access.ts).
    expect(cfg.VIGIL_ALARMS_SERVICE_ACCOUNT).toBe(`${ns}/${ns}-alarms`);
    // Workers' connection URLs by Secret name (connections.*), never a value.
    expect([cfg.VIGIL_RABBITMQ_SECRET, cfg.VIGIL_REDIS_SECRET]).toEqual(["vigil-rabbitmq", "vigil-redis"]);
    // worker.failover.tolerationSeconds, for the worker pods' not-ready/unreachable tolerations.
    expect(env.VIGIL_WORKER_TOLERATION_SECONDS).toBe("30");
    const five = await render(ns, ns, "--set", "worker.failover.tolerationSeconds=5");
    const fiveEnv = podSpec("operator", five).containers[0]!.env!;
    expect(fiveEnv.find((e) => e.name === "VIGIL_WORKER_TOLERATION_SECONDS")?.value).toBe("5");
    // NODE_OPTIONS only takes an allow-list of V8 flags; this Node must start with it.
    await promisify(execFile)(process.execPath, ["-e", ""], {
      env: { ...process.env, NODE_OPTIONS: env.NODE_OPTIONS },
    });
  });

  it("spreads the operator's two replicas over nodes (preferred anti-affinity by hostname), as values say", async () => {
    const d = deployment("operator");
    expect(d.spec?.replicas).toBe(2);
    const term = d.spec!.template.spec!.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
    expect(term).toEqual([
      {
        weight: 100,
        podAffinityTerm: {
          topologyKey: "kubernetes.io/hostname",
          labelSelector: { matchLabels: d.spec!.selector.matchLabels },
        },
      },
    ]);
    const required = await render(ns, ns, "--set", "operator.antiAffinity=required");
    expect(
      podSpec("operator", required).affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution,
    ).toEqual([
      { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: d.spec!.selector.matchLabels } },
    ]);
    expect(podSpec("operator", await render(ns, ns, "--set", "operator.antiAffinity=none")).affinity).toBeUndefined();
    // An `affinity` of the user's own replaces it, for every component.
    const own = await render(
      ns,
      ns,
      "--set",
      "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone",
      "--set",
      "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
    );
    for (const comp of ["operator", "gateway", "alarms"])
      expect(Object.keys(podSpec(comp, own).affinity ?? {}), comp).toEqual(["nodeAffinity"]);
  });

  it("renders every pod template restricted: non-root, read-only root, seccomp RuntimeDefault, drop ALL", async () => {
    const noAlarms = await render(ns, ns, "--set", "alarms.enabled=false");
    const templates: [string, Obj][] = [];
    for (const [label, from] of [
      ["default", objects],
      ["all-on", full],
      ["no-alarms", noAlarms],
    ] as const)
      for (const o of from)
        if (o.spec?.template?.spec) templates.push([`${label} ${o.kind}/${o.metadata?.name}`, o.spec.template]);
    // The chart's three Deployments by default, four with the assessor, two without alarms, and the worker pods the
    // operator creates.
    expect(templates).toHaveLength(3 + 4 + 2);
    templates.push(["operator's worker StatefulSet", workerTemplate() as unknown as Obj]);
    for (const [what, t] of templates) {
      const pod = t.spec;
      expect(pod.securityContext, what).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: "RuntimeDefault" },
      });
      expect(pod.securityContext.runAsUser, what).toBeGreaterThan(0);
      expect(pod.hostNetwork ?? false, what).toBe(false);
      for (const ctr of [...(pod.initContainers ?? []), ...pod.containers]) {
        expect(ctr.securityContext, `${what} ${ctr.name}`).toEqual({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
        });
      }
    }
  });

  it.each(["operator", "gateway", "alarms", "assessor", "worker"])(
    "runs its %s pod under the restricted Pod Security Standard (PodSecurity admission)",
    async (component) => {
      const nsObj = await c.core.readNamespace({ name: ns });
      nsObj.metadata!.labels = { ...nsObj.metadata!.labels, "pod-security.kubernetes.io/enforce": "restricted" };
      await c.core.replaceNamespace({ name: ns, body: nsObj });

      const template =
        component === "worker"
          ? workerTemplate()
          : component === "assessor" // off by default
            ? deployment(component, full, fullNs).spec!.template
            : deployment(component).spec!.template;
      let seq = 0;
      const pod = (mutate: (p: V1Pod) => void = () => {}): V1Pod => {
        const p: V1Pod = structuredClone({
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: `${component}-pod-${seq++}`, namespace: ns, labels: template.metadata?.labels },
          spec: template.spec,
        } as V1Pod);
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
    expect(byKind("PersistentVolumeClaim")[0]!.spec.accessModes).toEqual(["ReadWriteMany"]);
    // No Role or binding names it in the chart: the operator writes one per pool, naming Secrets.
    const subjects = [...byKind("RoleBinding"), ...byKind("ClusterRoleBinding")].flatMap((b) => b.subjects ?? []);
    expect(subjects.map((s: Obj) => s.name)).not.toContain(`${ns}-alarms`);
  });

  it("runs the assessor (off by default) with the alarms' RabbitMQ and the workers' Redis Secrets, probes on its port", async () => {
    expect(objects.filter((o) => o.metadata?.name?.includes("assessor"))).toEqual([]);
    const d = deployment("assessor", full, fullNs);
    expect(d.spec?.replicas).toBe(2);
    const pod = d.spec!.template.spec!;
    expect(pod.serviceAccountName).toBe(`${fullNs}-assessor`);
    const container = pod.containers[0]!;
    expect(container.args).toEqual(["assessor"]);
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e]));
    // The same Secrets as the alarm service's RABBITMQ_URL and the gateway's REDIS_URL: never a value.
    const alarmsEnv = Object.fromEntries(podSpec("alarms", full, fullNs).containers[0]!.env!.map((e) => [e.name, e]));
    const gatewayEnv = Object.fromEntries(podSpec("gateway", full, fullNs).containers[0]!.env!.map((e) => [e.name, e]));
    expect(env.RABBITMQ_URL?.valueFrom).toEqual(alarmsEnv.RABBITMQ_URL?.valueFrom);
    expect(env.REDIS_URL?.valueFrom).toEqual(gatewayEnv.REDIS_URL?.valueFrom);
    expect(env.RABBITMQ_URL?.valueFrom?.secretKeyRef).toEqual({ name: "vigil-rabbitmq", key: "url" });
    expect(env.REDIS_URL?.valueFrom?.secretKeyRef).toEqual({ name: "vigil-redis", key: "url" });
    expect(env.POD_NAMESPACE?.valueFrom?.fieldRef).toEqual({ fieldPath: "metadata.namespace" });
    expect([env.VIGIL_LEASE_NAME?.value, env.VIGIL_ASSESSOR_PORT?.value]).toEqual(["vigil-assessor", "8083"]);
    // extraEnv, as given, after the chart's own.
    expect((container.env ?? []).slice(-2).map((e) => e.name)).toEqual(["HTTPS_PROXY", "NO_PROXY"]);
    expect(container.ports).toEqual([{ name: "http-metrics", containerPort: 8083, protocol: "TCP" }]);
    expect(container.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "http-metrics" });
    expect(container.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "http-metrics" });
    expect(container.resources).toEqual({ requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } });
    expect(container.volumeMounts).toEqual([{ name: "tmp", mountPath: "/tmp" }]);
    expect(named(full, "Service", `${fullNs}-assessor-metrics`).spec.ports).toEqual([
      { name: "http-metrics", port: 8083, targetPort: "http-metrics", protocol: "TCP" },
    ]);
    const pdb = named(full, "PodDisruptionBudget", `${fullNs}-assessor`);
    expect(pdb.spec.selector.matchLabels).toEqual(d.spec!.selector.matchLabels);

    // A watch namespace: Role there, and VIGIL_WATCH_NAMESPACE; replicas and resources from values.
    const scoped = await render(
      ns,
      ns,
      ...["--set", "assessor.enabled=true", "--set", "assessor.watchNamespace=cams", "--set", "assessor.replicas=3"],
    );
    expect(deployment("assessor", scoped).spec?.replicas).toBe(3);
    expect(podSpec("assessor", scoped).containers[0]!.env!.find((e) => e.name === "VIGIL_WATCH_NAMESPACE")?.value).toBe(
      "cams",
    );
    expect(named(scoped, "Role", `${ns}-assessor`).metadata?.namespace).toBe("cams");
    expect(named(scoped, "Role", `${ns}-assessor`).rules).toEqual(rules("assessor-rules.yaml"));
    expect(scoped.some((o) => o.kind === "ClusterRole" && o.metadata?.name === `${ns}-assessor`)).toBe(false);
  });

  it("lets the assessor read pools and only the named Secrets, patch pool status, hold its Lease, and nothing else", async () => {
    // With assessor.keysSecretNames the Secrets rule carries them as resourceNames; the rest is the file's.
    const want = rules("assessor-rules.yaml").map((r: Obj) =>
      r.resources.includes("secrets") ? { ...r, resourceNames: ["qwen-keys", "openai-keys"] } : r,
    );
    expect(named(full, "ClusterRole", `${fullNs}-assessor`).rules).toEqual(want);
    expect(named(full, "Role", `${fullNs}-assessor-lease`).rules).toEqual(rules("assessor-namespace-rules.yaml"));
    const user = `system:serviceaccount:${fullNs}:${fullNs}-assessor`;
    const sar = async (verb: string, group: string, resource: string, o: Obj = {}) =>
      (
        await c.kc.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
          body: { spec: { user, resourceAttributes: { verb, group, resource, ...o } } },
        })
      ).status?.allowed ?? false;
    await waitFor("the assessor's bindings to take effect", () => sar("watch", "vigil.dev", "assessmentpools"));
    expect(await sar("list", "vigil.dev", "assessmentpools", { namespace: "elsewhere" })).toBe(true);
    expect(await sar("patch", "vigil.dev", "assessmentpools", { namespace: "x", subresource: "status" })).toBe(true);
    expect(await sar("watch", "", "secrets", { namespace: "x", name: "qwen-keys" })).toBe(true);
    expect(await sar("get", "", "secrets", { namespace: "x", name: "openai-keys" })).toBe(true);
    expect(await sar("update", "coordination.k8s.io", "leases", { namespace: fullNs, name: "vigil-assessor" })).toBe(
      true,
    );
    expect(await sar("create", "coordination.k8s.io", "leases", { namespace: fullNs })).toBe(true);
    for (const [verb, group, resource, o] of [
      ["get", "", "secrets", { namespace: "x", name: "vigil-mysql" }],
      ["list", "", "secrets", { namespace: "x" }], // a list without the name's field selector
      ["patch", "vigil.dev", "assessmentpools", { namespace: "x" }], // the spec
      ["update", "vigil.dev", "assessmentpools", { namespace: "x", subresource: "status" }],
      ["list", "vigil.dev", "cameradetections", { namespace: "x" }],
      ["update", "coordination.k8s.io", "leases", { namespace: fullNs, name: `${fullNs}-operator` }],
      ["create", "coordination.k8s.io", "leases", { namespace: "elsewhere" }],
    ] as const)
      expect(await sar(verb, group, resource, o), `${verb} ${resource} ${JSON.stringify(o)}`).toBe(false);
  });

  it("runs the gateway with an environment gateway/main.ts accepts: token, Redis and MySQL from Secrets, clips read-only", async () => {
    const d = deployment("gateway");
    expect(d.spec?.replicas).toBe(2);
    const pod = d.spec!.template.spec!;
    expect(pod.serviceAccountName).toBe(`${ns}-gateway`);
    const container = pod.containers[0]!;
    expect(container.args).toEqual(["gateway"]);
    const refs = Object.fromEntries(
      (container.env ?? []).filter((e) => e.valueFrom).map((e) => [e.name, e.valueFrom?.secretKeyRef]),
    );
    // Secrets only, never a value: the token(s), and the URLs that carry passwords.
    expect(refs).toEqual({
      VIGIL_API_TOKEN: { name: "vigil-gateway", key: "token" },
      REDIS_URL: { name: "vigil-redis", key: "url" },
      MYSQL_URL: { name: "vigil-mysql", key: "url" },
    });
    const secrets = {
      "vigil-gateway": { token: "t1,t2" },
      "vigil-redis": { url: "redis://:pw@redis:6379" },
      "vigil-mysql": { url: "mysql://u:pw@mysql:3306/vigil" },
    };
    const cfg = loadGatewayEnv(resolveEnv(container.env as never, {}, secrets));
    // The plain form: read-only tokens named by position.
    expect(cfg.VIGIL_API_TOKEN).toEqual([
      { name: "token-1", token: "t1", scope: "read" },
      { name: "token-2", token: "t2", scope: "read" },
    ]);
    expect([cfg.REDIS_URL, cfg.MYSQL_URL, cfg.VIGIL_CLIP_DIR]).toEqual([
      "redis://:pw@redis:6379",
      "mysql://u:pw@mysql:3306/vigil",
      "/var/lib/vigil/clips",
    ]);
    expect(cfg.VIGIL_WATCH_NAMESPACE).toBeUndefined();
    // The ports it listens on are the ones declared, probed and served.
    expect(container.ports).toEqual([
      { name: "http", containerPort: cfg.VIGIL_PORT, protocol: "TCP" },
      { name: "http-metrics", containerPort: cfg.VIGIL_GATEWAY_HEALTH_PORT, protocol: "TCP" },
    ]);
    expect(container.readinessProbe?.httpGet).toEqual({ path: "/readyz", port: "http-metrics" });
    expect(named(objects, "Service", `${ns}-gateway`).spec.ports).toEqual([
      { name: "http", port: 80, targetPort: "http", protocol: "TCP" },
    ]);
    expect(named(objects, "Service", `${ns}-gateway-metrics`).spec.ports).toEqual([
      { name: "http-metrics", port: 8081, targetPort: "http-metrics", protocol: "TCP" },
    ]);
    // It reads clips, never writes them.
    expect(container.volumeMounts).toEqual([{ name: "clips", mountPath: cfg.VIGIL_CLIP_DIR, readOnly: true }]);
    expect(pod.volumes).toEqual([
      { name: "clips", persistentVolumeClaim: { claimName: `${ns}-clips`, readOnly: true } },
    ]);

    // Without the alarm service there are no records or clips to serve.
    const noAlarms = podSpec("gateway", await render(ns, ns, "--set", "alarms.enabled=false"));
    expect(noAlarms.containers[0]!.env!.map((e) => e.name)).not.toContain("MYSQL_URL");
    expect(noAlarms.volumes).toBeUndefined();
  });

  it("lets the gateway list and watch cameras and pools, patch cameras, and nothing else; its catalog syncs as that ServiceAccount", async () => {
    expect(named(objects, "ClusterRole", `${ns}-gateway`).rules).toEqual(rules("gateway-rules.yaml"));
    const user = `system:serviceaccount:${ns}:${ns}-gateway`;
    await waitFor("the gateway's bindings to take effect", () => can(user, "watch", "vigil.dev", "cameradetections"));
    expect(await can(user, "list", "vigil.dev", "detectorpools", "elsewhere")).toBe(true);
    // Starting and stopping cameras: a merge patch of spec.paused (gateway/control-kube.ts).
    expect(await can(user, "patch", "vigil.dev", "cameradetections", ns)).toBe(true);
    for (const [verb, group, resource] of [
      ["patch", "vigil.dev", "detectorpools"],
      ["update", "vigil.dev", "cameradetections"],
      ["delete", "vigil.dev", "cameradetections"],
      ["get", "vigil.dev", "cameradetections"],
      ["get", "", "secrets"],
      ["list", "", "pods"],
      ["create", "", "serviceaccounts"],
    ] as const)
      expect(await can(user, verb, group, resource, ns), `${verb} ${resource}`).toBe(false);

    // The real catalog (gateway/catalog-kube.ts), authenticated with a token of the rendered ServiceAccount.
    await createCr(c, "cameradetections", ns, cameraManifest("door", "pool"));
    const token = await c.core.createNamespacedServiceAccountToken({
      name: `${ns}-gateway`,
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const catalog = createKubeCatalog(kubeConfigWithToken(c.kc, "gateway", token.status?.token ?? ""));
    try {
      await catalog.synced();
      await waitFor("the catalog to list the camera", async () => catalog.camera(`${ns}/door`));
    } finally {
      await catalog.close();
    }

    // gateway.watchNamespace: a Role there instead of a ClusterRole.
    const scoped = await render(ns, ns, "--set", "gateway.watchNamespace=cams");
    expect(byKind("ClusterRole", scoped).map((r) => r.metadata?.name)).toEqual([`${ns}-operator`]);
    expect(named(scoped, "Role", `${ns}-gateway`).metadata?.namespace).toBe("cams");
    expect(named(scoped, "RoleBinding", `${ns}-gateway`).subjects).toEqual([
      { kind: "ServiceAccount", name: `${ns}-gateway`, namespace: ns },
    ]);
    const env = podSpec("gateway", scoped).containers[0]!.env!;
    expect(env.find((e) => e.name === "VIGIL_WATCH_NAMESPACE")?.value).toBe("cams");
  });

  it("routes the optional Ingress to the gateway Service's http port, with its class and TLS", () => {
    const ing = named(full, "Ingress", `${fullNs}-gateway`);
    expect(ing.spec.ingressClassName).toBe("nginx");
    expect(ing.spec.tls).toEqual([{ secretName: "vigil-tls", hosts: ["vigil.example.com"] }]);
    expect(ing.spec.rules).toEqual([
      {
        host: "vigil.example.com",
        http: {
          paths: [
            {
              path: "/",
              pathType: "Prefix",
              backend: { service: { name: `${fullNs}-gateway`, port: { name: "http" } } },
            },
          ],
        },
      },
    ]);
    const svc = named(full, "Service", `${fullNs}-gateway`);
    expect(svc.spec.ports.map((p: { name: string }) => p.name)).toContain("http");
  });

  it("gives the operator, the gateway and the alarm service each a PodDisruptionBudget over its own pods", async () => {
    for (const comp of ["operator", "gateway", "alarms"]) {
      const pdb = named(objects, "PodDisruptionBudget", `${ns}-${comp}`);
      const d = deployment(comp);
      expect(pdb.spec, comp).toEqual({ maxUnavailable: 1, selector: { matchLabels: d.spec!.selector.matchLabels } });
      expect(d.spec!.template.metadata?.labels, comp).toMatchObject(d.spec!.selector.matchLabels!);
    }
    expect(byKind("PodDisruptionBudget", await render(ns, ns, "--set", "podDisruptionBudget.enabled=false"))).toEqual(
      [],
    );
    const only = await render(ns, ns, "--set", "gateway.enabled=false", "--set", "alarms.enabled=false");
    expect(byKind("PodDisruptionBudget", only).map((p) => p.metadata?.name)).toEqual([`${ns}-operator`]);
    expect(byKind("Deployment", only).map((p) => p.metadata?.name)).toEqual([`${ns}-operator`]);
  });

  it("lets NetworkPolicies admit each pod's own ports only, and send only to its destinations", () => {
    const policies = byKind("NetworkPolicy", full);
    const selecting = (labels: Record<string, string>) =>
      policies.filter((p) => Object.entries(p.spec.podSelector.matchLabels).every(([k, v]) => labels[k] === v));
    const tcp = (port: number) => ({ port, protocol: "TCP" });
    const monitoring = [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }];
    const metrics = (port: number) => ({ ports: [tcp(port)], from: monitoring });
    const apiServer = { to: [{ ipBlock: { cidr: "10.0.0.0/8" } }], ports: [tcp(443), tcp(6443)] };
    const dns = { ports: [tcp(53), { port: 53, protocol: "UDP" }] };
    const redis = { to: [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "redis" } } }], ports: [tcp(6379)] };
    const rabbitmq = { ports: [tcp(5672)] };
    const mysql = { ports: [tcp(3306)] };

    const want: Record<string, { labels: Record<string, string>; ingress: unknown[]; egress: unknown[] }> = {
      operator: {
        labels: deployment("operator", full, fullNs).spec!.template.metadata!.labels!,
        ingress: [metrics(8081)],
        egress: [apiServer, dns],
      },
      gateway: {
        labels: deployment("gateway", full, fullNs).spec!.template.metadata!.labels!,
        // The API from anyone (gatewayFrom is empty), /metrics from the monitoring namespace only.
        ingress: [{ ports: [tcp(8080)] }, metrics(8081)],
        egress: [apiServer, dns, redis, mysql],
      },
      alarms: {
        labels: deployment("alarms", full, fullNs).spec!.template.metadata!.labels!,
        ingress: [metrics(8082)],
        egress: [apiServer, dns, rabbitmq, mysql, {}], // {}: webhook receivers, anywhere
      },
      assessor: {
        labels: deployment("assessor", full, fullNs).spec!.template.metadata!.labels!,
        ingress: [metrics(8083)],
        egress: [
          apiServer,
          dns,
          rabbitmq,
          redis,
          { to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["10.0.0.0/8"] } }], ports: [tcp(443)] },
        ],
      },
      worker: {
        labels: workerTemplate().metadata.labels,
        ingress: [metrics(WORKER_PORT)],
        egress: [
          apiServer,
          dns,
          redis,
          rabbitmq,
          {
            to: [{ ipBlock: { cidr: "10.20.0.0/16", except: ["10.20.255.0/24"] } }],
            ports: [tcp(554), { port: 6970, endPort: 6999, protocol: "UDP" }],
          },
        ],
      },
    };
    for (const [comp, w] of Object.entries(want)) {
      const mine = selecting(w.labels);
      expect(mine, comp).toHaveLength(1);
      expect(mine[0]!.spec.policyTypes, comp).toEqual(["Ingress", "Egress"]);
      expect(mine[0]!.spec.ingress, comp).toEqual(w.ingress);
      expect(mine[0]!.spec.egress, comp).toEqual(w.egress);
    }
    // The declared ports are the ones admitted.
    for (const comp of ["operator", "gateway", "alarms", "assessor"]) {
      const ports = podSpec(comp, full, fullNs).containers[0]!.ports!.map((p) => p.containerPort);
      const admitted = want[comp]!.ingress.flatMap((r) =>
        (r as { ports: { port: number }[] }).ports.map((p) => p.port),
      );
      expect(admitted.sort(), comp).toEqual(ports.sort());
    }
    expect(byKind("NetworkPolicy")).toEqual([]); // off by default: it needs a CNI that enforces it
  });

  it("fails helm template and helm install on a misspelt or mistyped value (values.schema.json)", async () => {
    for (const [set, message] of [
      ["gateway.replicaz=3", "at '/gateway': additional properties 'replicaz' not allowed"],
      ["gateway.ingress.hostz[0].host=x", "at '/gateway/ingress': additional properties 'hostz' not allowed"],
      [
        "networkPolicy.egress.redis.to[0].ipblock.cidr=10.0.0.0/8",
        "at '/networkPolicy/egress/redis/to/0': additional properties 'ipblock' not allowed",
      ],
      [
        "monitoring.serviceMonitor.intervall=1m",
        "at '/monitoring/serviceMonitor': additional properties 'intervall' not allowed",
      ],
      [
        "worker.failover.tolerationSecond=5",
        "at '/worker/failover': additional properties 'tolerationSecond' not allowed",
      ],
      ["operatr.replicas=1", "at '': additional properties 'operatr' not allowed"],
      ["assessor.replicaz=3", "at '/assessor': additional properties 'replicaz' not allowed"],
      ["assessor.keysSecretNames[0]=Not_A_Name", "at '/assessor/keysSecretNames/0'"],
      ["operator.antiAffinity=sometimes", "at '/operator/antiAffinity'"],
      ["gateway.apiToken.existingSecret=Not_A_Name", "at '/gateway/apiToken/existingSecret'"],
    ] as const) {
      expect(await helmError("template", "v", CHART, "--set", set), set).toContain(message);
    }
    expect(await helmError("template", "v", CHART, "--set-string", "gateway.replicas=two")).toContain(
      "at '/gateway/replicas'",
    );

    // helm install against the real apiserver refuses it before creating anything (no release record).
    const out = await helmError(
      "install",
      "typo",
      CHART,
      ...["--kubeconfig", inject("kubeconfig"), "--namespace", ns, "--set", "gateway.ingress.enabeld=true"],
    );
    expect(out).toContain("additional properties 'enabeld' not allowed");
    const releases = await c.core.listNamespacedSecret({ namespace: ns, labelSelector: "owner=helm" });
    expect(releases.items).toEqual([]);
  });

  it("closes every object of values.schema.json, and describes every value of values.yaml", () => {
    const schema = JSON.parse(readFileSync(join(CHART, "values.schema.json"), "utf8"));
    const resolve = (s: Record<string, any>) => (s.$ref ? schema.$defs[s.$ref.replace("#/$defs/", "")] : s);
    const open: string[] = [];
    const walk = (s: Record<string, any>, path: string) => {
      if (s.type === "object" && path !== "/global" && !("additionalProperties" in s)) open.push(path);
      for (const [k, v] of Object.entries(s.properties ?? {})) walk(v as object, `${path}/${k}`);
      if (typeof s.additionalProperties === "object") walk(s.additionalProperties, `${path}/*`);
      if (s.items) walk(s.items, `${path}[]`);
      for (const alt of s.oneOf ?? []) walk(alt, path);
    };
    walk(schema, "");
    for (const [name, def] of Object.entries(schema.$defs)) walk(def as object, `$defs/${name}`);
    expect(open).toEqual([]);

    // Every key of values.yaml has its own schema (not only an open map).
    const missing: string[] = [];
    const cover = (v: unknown, s: Record<string, any>, path: string) => {
      s = resolve(s);
      if (Array.isArray(v)) for (const x of v) cover(x, resolve(s.items ?? {}), `${path}[]`);
      else if (v && typeof v === "object")
        for (const [k, x] of Object.entries(v)) {
          const sub =
            s.properties?.[k] ?? (typeof s.additionalProperties === "object" ? s.additionalProperties : undefined);
          if (!sub) missing.push(`${path}.${k}`);
          else cover(x, sub, `${path}.${k}`);
        }
    };
    cover(parse(readFileSync(join(CHART, "values.yaml"), "utf8")), schema, "");
    expect(missing).toEqual([]);
  });

  it("defaults every image to ghcr.io/vigil-dev/vigil:<package.json version>, the chart's appVersion", async () => {
    const chart = parse(readFileSync(join(CHART, "Chart.yaml"), "utf8"));
    expect(chart.appVersion).toBe(pkgVersion);
    expect(pkgVersion).toBe("0.1.0");
    const image = `ghcr.io/vigil-dev/vigil:${pkgVersion}`;
    const images = (from: Obj[]) =>
      from.flatMap((o) => (o.spec?.template?.spec?.containers ?? []).map((ctr: { image: string }) => ctr.image));
    expect(new Set(images([...objects, ...full]))).toEqual(new Set([image]));
    const env = podSpec("operator").containers[0]!.env!;
    expect(env.find((e) => e.name === "VIGIL_WORKER_IMAGE")?.value).toBe(image);
    // image.tag moves every component, the workers included.
    const tagged = await render(ns, ns, "--set", "image.tag=0.2.0");
    expect(new Set(images(tagged))).toEqual(new Set(["ghcr.io/vigil-dev/vigil:0.2.0"]));
    expect(podSpec("operator", tagged).containers[0]!.env!.find((e) => e.name === "VIGIL_WORKER_IMAGE")?.value).toBe(
      "ghcr.io/vigil-dev/vigil:0.2.0",
    );
  });

  it("tells, after install, which Secrets to create and which charts to pair it with (NOTES.txt)", async () => {
    // A client-side dry run still asks the apiserver for objects the release would take over: a namespace of its own.
    const where = `${ns}-notes`;
    const out = await helm(
      "install",
      "notes",
      CHART,
      "--kubeconfig",
      inject("kubeconfig"),
      "-n",
      where,
      "--dry-run=client",
    );
    const notes = out.slice(out.indexOf("NOTES:"));
    expect(notes).toContain(`kubectl -n ${where} create secret generic vigil-gateway --from-literal=token=`);
    expect(notes).toContain(`kubectl -n ${where} create secret generic vigil-redis --from-literal=url=redis://`);
    expect(notes).toContain(`kubectl -n ${where} create secret generic vigil-mysql --from-literal=url=mysql://`);
    expect(notes).toContain("oci://registry-1.docker.io/bitnamicharts/redis");
  });

  it("ships the generated CRDs, byte for byte", () => {
    const generated = readdirSync(join(ROOT, "crds")).filter((f) => f.endsWith(".yaml"));
    expect(generated.length).toBeGreaterThan(0);
    expect(readdirSync(join(CHART, "crds")).sort()).toEqual(generated.sort());
    for (const f of generated)
      expect(readFileSync(join(CHART, "crds", f), "utf8"), f).toBe(readFileSync(join(ROOT, "crds", f), "utf8"));
  });
});
