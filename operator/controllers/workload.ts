// The worker StatefulSet and headless Service a DetectorPool runs as (pure: spec in, manifests out).
import { createHash } from "node:crypto";
import type { DetectorPool, DetectorPoolSpec } from "../api/detector-pool.ts";
import { API_VERSION } from "../api/meta.ts";
import { MODEL_CREDENTIAL_ENV, modelEnv } from "../api/worker-env.ts";

export const LABEL_POOL = "vigil.dev/pool";
export const LABEL_WORKER = "vigil.dev/worker";
export const ANNOTATION_SPEC_HASH = "vigil.dev/spec-hash";
export const WORKER_PORT = 9090;

export const statefulSetName = (pool: string) => `${pool}-worker`;
export const serviceName = (pool: string) => `${pool}-workers`;
export const workerName = (pool: string, ordinal: number) => `${statefulSetName(pool)}-${ordinal}`;

export type WorkloadOptions = {
  image: string;
  replicas: number;
  serviceAccountName: string;
  workerEnvSecret: string;
  /** The workers' RABBITMQ_URL, from this Secret's key in the pool's namespace (alarms). */
  rabbitmqSecret?: { name: string; key: string } | undefined;
  /** The workers' REDIS_URL (the bus), from this Secret's key in the pool's namespace; over envFrom's when both. */
  redisSecret?: { name: string; key: string } | undefined;
  /** The clip store's PersistentVolumeClaim in the pool's namespace, mounted at CLIP_DIR. */
  clipClaim?: string | undefined;
  /** For the not-ready and unreachable taints, unless the pool sets spec.failover.tolerationSeconds. */
  tolerationSeconds?: number | undefined;
};

/** The chart's worker.failover.tolerationSeconds, and the operator's VIGIL_WORKER_TOLERATION_SECONDS. */
export const DEFAULT_TOLERATION_SECONDS = 30;

const selectorLabels = (pool: string) => ({ "app.kubernetes.io/name": "vigil-worker", [LABEL_POOL]: pool });

export function ownerRef(pool: DetectorPool) {
  return {
    apiVersion: API_VERSION,
    kind: "DetectorPool",
    name: pool.metadata.name,
    uid: pool.metadata.uid ?? "",
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Adds a hash of the manifest so an unchanged apply can be skipped without a request. */
export function stamped<T extends { metadata: { name: string; annotations?: Record<string, string> } }>(
  obj: T,
): T & { metadata: { annotations: Record<string, string> } } {
  const hash = createHash("sha256").update(JSON.stringify(obj)).digest("hex").slice(0, 16);
  obj.metadata.annotations = { ...obj.metadata.annotations, [ANNOTATION_SPEC_HASH]: hash };
  return obj as T & { metadata: { annotations: Record<string, string> } };
}

const MODEL_DIR = "/var/cache/vigil/models";
export const CLIP_DIR = "/var/lib/vigil/clips";
/** The clip recorder's rolling segment buffers: local disk, not the shared volume (written every second). */
const CLIP_SCRATCH_DIR = "/var/lib/vigil/clip-scratch";

export function workerStatefulSet(pool: DetectorPool, o: WorkloadOptions) {
  const name = pool.metadata.name;
  const spec = pool.spec;
  const labels = {
    ...selectorLabels(name),
    "app.kubernetes.io/part-of": "vigil",
    "app.kubernetes.io/component": "worker",
  };
  // The worker's environment contract (operator/api/worker-env.ts). Only what the worker reads: anything else in
  // the hashed pod template would restart every worker when it changes.
  const credentials = spec.model.credentialsSecretRef;
  const env = [
    { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    ...Object.entries({ ...modelEnv(spec.model, spec.executionProviders), VIGIL_MODEL_DIR: MODEL_DIR }).map(
      ([k, value]) => ({ name: k, value }),
    ),
    // Download credentials stay in their Secret: the pod reads them at start, the StatefulSet only names them.
    ...(credentials
      ? Object.entries(MODEL_CREDENTIAL_ENV).map(([key, envName]) => ({
          name: envName,
          valueFrom: { secretKeyRef: { name: credentials.name, key, optional: true } },
        }))
      : []),
    // Optional: a worker whose Secret is missing still detects, and its alarm cameras log that alarms are off.
    ...(o.rabbitmqSecret
      ? [
          {
            name: "RABBITMQ_URL",
            valueFrom: { secretKeyRef: { name: o.rabbitmqSecret.name, key: o.rabbitmqSecret.key, optional: true } },
          },
        ]
      : []),
    ...(o.redisSecret
      ? [
          {
            name: "REDIS_URL",
            valueFrom: { secretKeyRef: { name: o.redisSecret.name, key: o.redisSecret.key, optional: true } },
          },
        ]
      : []),
    ...(o.clipClaim
      ? [
          { name: "VIGIL_CLIP_DIR", value: CLIP_DIR },
          { name: "VIGIL_CLIP_SCRATCH_DIR", value: CLIP_SCRATCH_DIR },
        ]
      : []),
  ];
  return stamped({
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: {
      name: statefulSetName(name),
      namespace: pool.metadata.namespace,
      labels,
      ownerReferences: [ownerRef(pool)],
    },
    spec: {
      replicas: o.replicas,
      serviceName: serviceName(name),
      // Workers are interchangeable: start and stop them together, not one by one.
      podManagementPolicy: "Parallel",
      selector: { matchLabels: selectorLabels(name) },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: o.serviceAccountName,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 30,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            runAsGroup: 65532,
            fsGroup: 65532,
            seccompProfile: { type: "RuntimeDefault" },
          },
          ...(spec.nodeSelector ? { nodeSelector: spec.nodeSelector } : {}),
          tolerations: workerTolerations(spec, o.tolerationSeconds ?? DEFAULT_TOLERATION_SECONDS),
          containers: [
            {
              name: "worker",
              image: spec.image ?? o.image,
              args: ["worker"],
              env,
              // Redis/RabbitMQ URLs and the like; optional so a pool works before the chart's Secret exists.
              envFrom: [{ secretRef: { name: o.workerEnvSecret, optional: true } }],
              ports: [{ name: "metrics", containerPort: WORKER_PORT }],
              readinessProbe: { httpGet: { path: "/readyz", port: "metrics" }, periodSeconds: 5 },
              // The health endpoint comes up once the model is loaded: a download or a TensorRT engine build may
              // take minutes, and liveness must not restart (and so re-download) before then.
              startupProbe: { httpGet: { path: "/healthz", port: "metrics" }, periodSeconds: 10, failureThreshold: 90 },
              livenessProbe: { httpGet: { path: "/healthz", port: "metrics" }, periodSeconds: 10, failureThreshold: 6 },
              resources: spec.resources,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              volumeMounts: [
                // Where http(s) models are downloaded; a file:// model is a path in the image or a volume the
                // user mounts (e.g. /models), which this does not cover.
                { name: "model-cache", mountPath: MODEL_DIR },
                { name: "tmp", mountPath: "/tmp" },
                ...(o.clipClaim
                  ? [
                      { name: "clips", mountPath: CLIP_DIR },
                      { name: "clip-scratch", mountPath: CLIP_SCRATCH_DIR },
                    ]
                  : []),
              ],
            },
          ],
          volumes: [
            { name: "model-cache", emptyDir: { sizeLimit: "2Gi" } },
            { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "512Mi" } },
            ...(o.clipClaim
              ? [
                  { name: "clips", persistentVolumeClaim: { claimName: o.clipClaim } },
                  // On disk, not in memory like /tmp: a rolling buffer per alarm camera (tens of MB each).
                  { name: "clip-scratch", emptyDir: { sizeLimit: "4Gi" } },
                ]
              : []),
          ],
        },
      },
    },
  });
}

export function workerService(pool: DetectorPool) {
  const name = pool.metadata.name;
  return stamped({
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: serviceName(name),
      namespace: pool.metadata.namespace,
      labels: { ...selectorLabels(name), "app.kubernetes.io/part-of": "vigil" },
      ownerReferences: [ownerRef(pool)],
    },
    spec: {
      clusterIP: "None",
      selector: selectorLabels(name),
      ports: [{ name: "metrics", port: WORKER_PORT, targetPort: "metrics" }],
    },
  });
}

type Toleration = NonNullable<DetectorPoolSpec["tolerations"]>[number];

export const GPU_RESOURCE = "nvidia.com/gpu";

/**
 * The pool's own tolerations, then what failover needs where the pool did not say otherwise for that key and
 * effect. Kubernetes keeps a pod on a not-ready or unreachable node for 300 s (DefaultTolerationSeconds); a worker
 * pod there holds a GPU that its replacement needs, so it goes after tolerationSeconds (its cameras moved within
 * seconds already: the worker's Lease). GPU nodes carry the nvidia.com/gpu:NoSchedule taint (the GPU operator
 * and the cloud providers' GPU pools put it there), so a pool that asks for GPUs tolerates it.
 */
export function workerTolerations(spec: DetectorPoolSpec, defaultSeconds: number): Toleration[] {
  const seconds = spec.failover?.tolerationSeconds ?? defaultSeconds;
  const own = spec.tolerations ?? [];
  const wantsGpu = [spec.resources.limits, spec.resources.requests].some((r) => r !== undefined && GPU_RESOURCE in r);
  const needed: Toleration[] = [
    { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: seconds },
    { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute", tolerationSeconds: seconds },
    ...(wantsGpu ? [{ key: GPU_RESOURCE, operator: "Exists", effect: "NoSchedule" } as const] : []),
  ];
  // An own toleration without a key (operator Exists) tolerates every taint of its effect, and without an effect
  // every effect: adding ours to it would only shorten what the pool asked for.
  const covered = (t: Toleration) =>
    own.some((o) => (o.key === undefined || o.key === t.key) && (o.effect === undefined || o.effect === t.effect));
  return [...own, ...needed.filter((t) => !covered(t))];
}

/**
 * A worker's own identity: a ServiceAccount named like its pod, a Role that lets that ServiceAccount read exactly
 * the credential Secrets of the cameras assigned to the worker (by resourceNames) and renew its own Lease, and that
 * Lease, named like the pod, which the worker renews to say it runs (worker/lease.ts). The pod itself runs as the
 * shared worker ServiceAccount, which cannot read Secrets nor write Leases; it asks for a token of this one, and the
 * chart's ValidatingAdmissionPolicy lets a pod ask only for the ServiceAccount named like itself. So an ffmpeg
 * compromised through a hostile stream reads the credentials of its own worker's cameras, and no others, and can
 * speak for its own worker only. The operator creates the Lease, so no worker may create Leases at all.
 */
export function workerIdentity(pool: DetectorPool, worker: string, secrets: readonly string[]) {
  const namespace = pool.metadata.namespace;
  const labels = { ...selectorLabels(pool.metadata.name), "app.kubernetes.io/part-of": "vigil" };
  const metadata = { name: worker, namespace, labels, ownerReferences: [ownerRef(pool)] };
  const names = [...new Set(secrets)].sort();
  return [
    stamped({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { ...metadata },
      automountServiceAccountToken: false,
    }),
    stamped({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { ...metadata },
      rules: [
        // No Secret rule when no camera has credentials: a rule with no resourceNames would mean every Secret.
        ...(names.length ? [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"], resourceNames: names }] : []),
        {
          apiGroups: ["coordination.k8s.io"],
          resources: ["leases"],
          verbs: ["get", "update"],
          resourceNames: [worker],
        },
      ],
    }),
    stamped({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { ...metadata },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: worker },
      subjects: [{ kind: "ServiceAccount", name: worker, namespace }],
    }),
    // Only metadata: the holder, renewTime and duration are the worker's fields (server-side apply leaves them be).
    stamped({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { ...metadata } }),
  ];
}
