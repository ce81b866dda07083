// Writes the operator makes: server-side apply for what it owns, merge patches for CRs (they reject
// strategic merge), and status through the status subresource. One field manager for all of them.
import {
  type CustomObjectsApi,
  type KubernetesObject,
  type KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { GROUP, VERSION } from "../api/meta.ts";
import { RESOURCES } from "../api/resources.ts";

export const FIELD_MANAGER = "vigil-operator";

export async function serverSideApply(objects: KubernetesObjectApi, obj: KubernetesObject): Promise<void> {
  await objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
}

/** JSON merge patch; `null` deletes a key. resourceVersion, when given, makes it a compare-and-swap. */
export async function mergePatch(objects: KubernetesObjectApi, patch: KubernetesObject): Promise<void> {
  await objects.patch(patch, undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch);
}

export async function patchCustomStatus(
  custom: CustomObjectsApi,
  plural: string,
  namespace: string,
  name: string,
  status: unknown,
): Promise<void> {
  await custom.patchNamespacedCustomObjectStatus(
    { group: GROUP, version: VERSION, plural, namespace, name, body: { status }, fieldManager: FIELD_MANAGER },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

/**
 * Server-side apply of the fields of a status this manager owns, for resources with several status writers
 * (the operator and the workers both report on a camera).
 */
export async function applyCustomStatus(
  custom: CustomObjectsApi,
  def: { kind: string; plural: string },
  namespace: string,
  name: string,
  status: unknown,
  fieldManager = FIELD_MANAGER,
): Promise<void> {
  await custom.patchNamespacedCustomObjectStatus(
    {
      group: GROUP,
      version: VERSION,
      plural: def.plural,
      namespace,
      name,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: def.kind, metadata: { name, namespace }, status },
      fieldManager,
      force: true,
    },
    setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply),
  );
}

/**
 * Adds or removes one finalizer with a JSON patch whose `test` op guards the exact list entry: unlike a
 * resourceVersion precondition, a concurrent label or status write does not make it fail.
 */
export async function addFinalizer(custom: CustomObjectsApi, obj: KubernetesObject, finalizer: string): Promise<void> {
  const list = obj.metadata?.finalizers;
  if (list?.includes(finalizer)) return;
  // Append to an existing list; create a missing one (JSON patch cannot test for absence).
  await jsonPatch(custom, obj, [
    list?.length
      ? { op: "add", path: "/metadata/finalizers/-", value: finalizer }
      : { op: "add", path: "/metadata/finalizers", value: [finalizer] },
  ]);
}

export async function removeFinalizer(
  custom: CustomObjectsApi,
  obj: KubernetesObject,
  finalizer: string,
): Promise<void> {
  const i = obj.metadata?.finalizers?.indexOf(finalizer) ?? -1;
  if (i < 0) return;
  await jsonPatch(custom, obj, [
    { op: "test", path: `/metadata/finalizers/${i}`, value: finalizer },
    { op: "remove", path: `/metadata/finalizers/${i}` },
  ]);
}

async function jsonPatch(custom: CustomObjectsApi, obj: KubernetesObject, ops: object[]): Promise<void> {
  const def = RESOURCES.find((r) => r.kind === obj.kind);
  if (!def) throw new Error(`finalizers are only managed on Vigil resources, not ${obj.kind}`);
  await custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      plural: def.plural,
      namespace: obj.metadata?.namespace ?? "",
      name: obj.metadata?.name ?? "",
      body: ops,
      fieldManager: FIELD_MANAGER,
    },
    setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
  );
}
