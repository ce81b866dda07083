// Installs Vigil's CRDs. They travel as plain JSON through the custom-objects API: client-node's typed
// serializer would drop x-kubernetes-validations and the other raw schema keys (see FACTS).
import { type CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { crdFor } from "../api/crd.ts";
import { RESOURCES } from "../api/resources.ts";
import { FIELD_MANAGER } from "./apply.ts";

const CRD_API = { group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions" };

export async function applyCrds(custom: CustomObjectsApi, timeoutMs = 30_000): Promise<void> {
  const crds = RESOURCES.map(crdFor);
  for (const body of crds) {
    const name = (body.metadata as { name: string }).name;
    await custom.patchClusterCustomObject(
      { ...CRD_API, name, body, fieldManager: FIELD_MANAGER, force: true },
      setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply),
    );
  }
  const deadline = Date.now() + timeoutMs;
  for (const body of crds) {
    const name = (body.metadata as { name: string }).name;
    for (;;) {
      const crd = (await custom.getClusterCustomObject({ ...CRD_API, name })) as {
        status?: { conditions?: { type: string; status: string }[] };
      };
      if (crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} not Established after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
