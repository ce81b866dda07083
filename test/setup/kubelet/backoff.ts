// The kubelet's restart backoff (pure), as pkg/kubelet/kuberuntime's doBackOff uses client-go's flowcontrol.Backoff:
// a container that exits with no backoff entry (or one older than twice the cap: it ran ~10 min) is restarted at
// once and gets a 10 s entry; after each later exit it waits the entry's delay from its finish time, and each
// restart doubles the delay, capped at 300 s. So the delays before restarts 1, 2, 3… are 0 s, 10 s, 20 s, 40 s… 300 s.

export type BackoffPolicy = { initialMs: number; maxMs: number };
export const KUBELET_BACKOFF: BackoffPolicy = { initialMs: 10_000, maxMs: 300_000 };

/** One container's entry: the current delay and when it was last (re)started through the backoff. */
export type BackoffEntry = { delayMs: number; updatedAt: number };

const expired = (e: BackoffEntry, at: number, p: BackoffPolicy) => at - e.updatedAt > 2 * p.maxMs;

/** How long after `now` to restart a container that finished at `finishedAt` (flowcontrol's IsInBackOffSince). */
export function restartDelay(
  entry: BackoffEntry | undefined,
  finishedAt: number,
  now: number,
  p: BackoffPolicy = KUBELET_BACKOFF,
): number {
  if (!entry || expired(entry, finishedAt, p)) return 0;
  return Math.max(0, finishedAt + entry.delayMs - now);
}

/** The entry after a restart at `now` (flowcontrol's Next): initial when new or expired, else doubled up to the cap. */
export function afterRestart(
  entry: BackoffEntry | undefined,
  now: number,
  p: BackoffPolicy = KUBELET_BACKOFF,
): BackoffEntry {
  const delayMs = !entry || expired(entry, now, p) ? p.initialMs : Math.min(entry.delayMs * 2, p.maxMs);
  return { delayMs, updatedAt: now };
}
