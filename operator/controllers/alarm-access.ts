// What the alarm service (`vigil alarms`) may do in a DetectorPool's namespace, written by the operator per pool:
// `get` on exactly the webhook Secrets its alarm cameras name (alarm.webhookSecretRef), Events for those cameras,
// and reading those cameras. The service runs in the release namespace as its own ServiceAccount and reads no
// other Secret: as with the workers' per-worker identities (workload.ts), least privilege needs resourceNames,
// and only the operator knows which names. Named `<pool>-alarms`, which no worker name (`<pool>-worker-<n>`) takes.
import type { DetectorPool } from "../api/detector-pool.ts";
import { ownerRef, stamped } from "./workload.ts";

export type AlarmServiceAccount = { namespace: string; name: string };

export const alarmAccessName = (pool: string) => `${pool}-alarms`;

/** Parses VIGIL_ALARMS_SERVICE_ACCOUNT (`<namespace>/<name>`). */
export function parseAlarmServiceAccount(v: string | undefined): AlarmServiceAccount | undefined {
  if (!v) return undefined;
  const [namespace, name, ...rest] = v.split("/");
  if (!namespace || !name || rest.length)
    throw new Error(`VIGIL_ALARMS_SERVICE_ACCOUNT: must be <namespace>/<name>, got ${JSON.stringify(v)}`);
  return { namespace, name };
}

export function alarmServiceAccess(
  pool: DetectorPool,
  cameras: readonly { name: string; webhookSecret: string | undefined }[],
  sa: AlarmServiceAccount,
) {
  const name = alarmAccessName(pool.metadata.name);
  const namespace = pool.metadata.namespace;
  const metadata = {
    name,
    namespace,
    labels: { "app.kubernetes.io/name": "vigil-alarms", "app.kubernetes.io/part-of": "vigil" },
    ownerReferences: [ownerRef(pool)],
  };
  const secrets = [...new Set(cameras.flatMap((c) => (c.webhookSecret ? [c.webhookSecret] : [])))].sort();
  const cams = [...new Set(cameras.filter((c) => c.webhookSecret).map((c) => c.name))].sort();
  // No rule naming nothing: a rule without resourceNames would grant every object of its kind.
  const rules = secrets.length
    ? [
        { apiGroups: [""], resources: ["secrets"], verbs: ["get"], resourceNames: secrets },
        { apiGroups: ["vigil.dev"], resources: ["cameradetections"], verbs: ["get"], resourceNames: cams },
        // Events cannot be limited by name at create time.
        { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
      ]
    : [];
  return [
    stamped({ apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", metadata: { ...metadata }, rules }),
    stamped({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { ...metadata },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name: sa.name, namespace: sa.namespace }],
    }),
  ];
}
