// The command line that runs one container as a process (pure). `unshare --mount --uts` (no --fork, so it execs
// and the pid stays the container's) gives the process a private mount table and hostname; a shell script there
// bind-mounts each volume at its mountPath, makes the root read-only when asked (a bind remount: only this
// namespace's view changes), sets the pod's hostname, then execs setpriv, which drops to the pod's user and groups
// with no_new_privs and a parent-death SIGKILL (no orphan outlives the kubelet) and execs the Vigil binary.
import type { Mount } from "./volumes.ts";

export type Launch = {
  mounts: Mount[];
  /**
   * The checkout that stands for the image, shown at APP_DIR as the image has its app there (bin, dist,
   * node_modules): a pod's volume at /tmp would hide a checkout under /tmp (a clean clone in CI) otherwise.
   */
  app?: string;
  readOnlyRoot: boolean;
  hostname: string;
  uid: number;
  gid: number;
  groups: number[];
  /** capabilities.drop contains ALL: empty the bounding and inheritable sets too. */
  dropAllCaps: boolean;
  /** The program and its arguments, e.g. [process.execPath, "<repo>/dist/vigil.js", "operator"]. */
  argv: string[];
};

/** One shell word: single-quoted, with embedded quotes closed, escaped and reopened. */
export const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Where the image keeps the app (Dockerfile, hack/image.sh), and so where the checkout is shown to the process. */
export const APP_DIR = "/app";

/** A path of the checkout as the process sees it (under APP_DIR), or the path itself when outside the checkout. */
export const inApp = (repoRoot: string, path: string) =>
  path === repoRoot || path.startsWith(`${repoRoot}/`) ? `${APP_DIR}${path.slice(repoRoot.length)}` : path;

/** Where each volume's source is bind-mounted first, in the container's own mount namespace (a tmpfs there). */
const STAGE = "/run/process-kubelet-stage";

export function mountScript(l: Launch): string {
  const q = shQuote;
  const lines = ["set -e"];
  const mounts: Mount[] = [...(l.app ? [{ source: l.app, target: APP_DIR, readOnly: true }] : []), ...l.mounts];
  // Two passes: every source is bound to a staging path first, then each staged one at its mountPath. In one pass,
  // a volume mounted at /tmp would hide every later source under /tmp (a checkout there, or the kubelet's state).
  if (mounts.length) lines.push(`mkdir -p ${STAGE}`, `mount -t tmpfs -o size=1m,mode=700 stage ${STAGE}`);
  for (const [i, m] of mounts.entries()) {
    // A directory is mounted on a directory, a file (a subPath to a Secret key) on a file.
    lines.push(
      `if [ -d ${q(m.source)} ]; then mkdir ${STAGE}/${i}; else : > ${STAGE}/${i}; fi`,
      `mount --bind ${q(m.source)} ${STAGE}/${i}`,
    );
  }
  for (const [i, m] of mounts.entries()) {
    lines.push(
      `if [ -d ${STAGE}/${i} ]; then mkdir -p ${q(m.target)}; else mkdir -p "$(dirname ${q(m.target)})"; [ -e ${q(m.target)} ] || : > ${q(m.target)}; fi`,
      `mount --bind ${STAGE}/${i} ${q(m.target)}`,
    );
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${q(m.target)}`);
  }
  if (mounts.length) lines.push(`umount -l ${STAGE}`);
  if (l.app) lines.push(`cd ${APP_DIR}`);
  // After the volumes: their mount points had to be created on the (then writable) root first.
  if (l.readOnlyRoot) lines.push("mount -o remount,bind,ro /");
  lines.push(`hostname ${q(l.hostname)}`);
  const setpriv = [
    "setpriv",
    `--reuid=${l.uid}`,
    `--regid=${l.gid}`,
    l.groups.length ? `--groups=${l.groups.join(",")}` : "--clear-groups",
    "--no-new-privs",
    ...(l.dropAllCaps ? ["--inh-caps=-all", "--bounding-set=-all"] : []),
    "--pdeathsig=KILL",
    "--",
  ];
  lines.push(`exec ${[...setpriv, ...l.argv.map(q)].join(" ")}`);
  return lines.join("\n");
}

/** The argv to spawn: unshare, then sh -c with the script. */
export const launchArgv = (l: Launch): string[] => [
  "unshare",
  "--mount",
  "--uts",
  "--propagation",
  "private",
  "--",
  "sh",
  "-c",
  mountScript(l),
];
