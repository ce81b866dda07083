// Pieces shared by every Vigil resource: API group, Kubernetes-style Conditions and Secret references.
import { z } from "zod";

export const GROUP = "vigil.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A DNS-1123 label, the shape of most Kubernetes names we reference. */
export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label (lower-case letters, digits and '-')");

/** A key inside a Secret in the same namespace. Credentials are only ever referenced, never inlined. */
export const secretKeyRef = z
  .object({
    name: dnsLabel.describe("Secret name, in the resource's namespace."),
    key: z.string().min(1).max(253).describe("Key within the Secret."),
  })
  .describe("Reference to a key of a Secret in the same namespace.");
export type SecretKeyRef = z.infer<typeof secretKeyRef>;

export const conditionStatus = z.enum(["True", "False", "Unknown"]);

/** metav1.Condition, field for field, so kubectl and tools like kstatus read it. */
export const condition = z.object({
  type: z.string().min(1).max(316),
  status: conditionStatus,
  observedGeneration: z.int().min(0).optional(),
  lastTransitionTime: z.string().describe("RFC 3339 time of the last status change."),
  reason: z.string().min(1).max(1024),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof condition>;

export const conditions = z
  .array(condition)
  .max(16)
  .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] });

/** The bits of ObjectMeta the operator reads. Objects come from the apiserver, so only shape-check what we use. */
export const objectMeta = z.looseObject({
  name: z.string(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  generation: z.int().optional(),
  resourceVersion: z.string().optional(),
  creationTimestamp: z.union([z.string(), z.date()]).optional(),
  deletionTimestamp: z.union([z.string(), z.date()]).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  finalizers: z.array(z.string()).optional(),
});
