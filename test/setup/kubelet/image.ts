// Which containers the process kubelet runs: those whose image's repository is Vigil's, whatever the tag or digest.

/** The repository part of an image reference: `ghcr.io/vigil-dev/vigil:0.1.0@sha256:…` → `ghcr.io/vigil-dev/vigil`. */
export function imageRepository(ref: string): string {
  const noDigest = ref.split("@")[0] ?? ref;
  const slash = noDigest.lastIndexOf("/");
  const colon = noDigest.lastIndexOf(":");
  // A colon after the last slash is a tag; one before it is a registry's port (localhost:5000/vigil).
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

export const isImageOf = (ref: string | undefined, repository: string) =>
  ref !== undefined && imageRepository(ref) === repository;
