// Who a container's process runs as (pure): the container's securityContext over the pod's, over the image's user.
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { ContainerConfigError } from "./env.ts";

/** The user Vigil's image runs as (`umoci config --config.user=65532:65532`, hack/image.sh). */
export const IMAGE_USER = { uid: 65532, gid: 65532 } as const;

export type Identity = {
  uid: number;
  gid: number;
  /** Supplementary groups: fsGroup first, then supplementalGroups (the kubelet adds both). */
  groups: number[];
  /** The group that owns writable volumes (fsGroup, else the primary group). */
  volumeGroup: number;
  readOnlyRootFilesystem: boolean;
};

export function identity(pod: V1Pod, c: V1Container, image = IMAGE_USER): Identity {
  const ps = pod.spec?.securityContext;
  const cs = c.securityContext;
  const uid = cs?.runAsUser ?? ps?.runAsUser ?? image.uid;
  const gid = cs?.runAsGroup ?? ps?.runAsGroup ?? image.gid;
  if ((cs?.runAsNonRoot ?? ps?.runAsNonRoot) && uid === 0)
    throw new ContainerConfigError(`container ${c.name}: runAsNonRoot and the container would run as root (uid 0)`);
  if (cs?.privileged) throw new ContainerConfigError(`container ${c.name}: privileged is not supported here`);
  const groups = [...new Set([...(ps?.fsGroup !== undefined ? [ps.fsGroup] : []), ...(ps?.supplementalGroups ?? [])])];
  return {
    uid,
    gid,
    groups,
    volumeGroup: ps?.fsGroup ?? gid,
    readOnlyRootFilesystem: cs?.readOnlyRootFilesystem === true,
  };
}
