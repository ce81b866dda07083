// Which worker images a DetectorPool may run (pure). A pool's spec.image runs as the worker ServiceAccount, so
// whoever may create a pool could otherwise run any image with the workers' permissions.

/**
 * A prefix names a repository, matched at a tag or digest: "ghcr.io/vigil-dev/vigil" allows
 * "ghcr.io/vigil-dev/vigil:0.2" and "ghcr.io/vigil-dev/vigil@sha256:…", never "ghcr.io/vigil-dev/vigil-evil" nor
 * "ghcr.io/vigil-dev/vigil/other" (on Docker Hub "vigil/x" is another user's image). Only a prefix ending in "/"
 * allows a whole path ("ghcr.io/vigil-dev/").
 */
export function imageAllowed(image: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => {
    if (!p || !image.startsWith(p)) return false;
    if (image.length === p.length || /[/:@]$/.test(p)) return true;
    return /[:@]/.test(image.charAt(p.length));
  });
}

/** The prefixes in force: the configured ones, plus the operator's own worker image (a pool without spec.image). */
export function allowedImagePrefixes(configured: readonly string[], defaultImage: string): string[] {
  return [...new Set([defaultImage, ...configured.filter(Boolean)])];
}
