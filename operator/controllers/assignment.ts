// Which worker serves which camera: a pure function, so every placement rule is unit-tested.
// Sticky (a camera stays where it is while that worker is assignable and within capacity), then
// least-loaded for the rest; older cameras are admitted first, so a newcomer never evicts a running one.

export type CameraInput = { key: string; current?: string | undefined; createdAt: number };
export type WorkerInput = { name: string; capacity: number; assignable: boolean };
export type AssignmentResult = { assigned: Map<string, string>; unassigned: string[]; load: Map<string, number> };

const byAge = (a: CameraInput, b: CameraInput) =>
  a.createdAt - b.createdAt || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

export function assignCameras(cameras: readonly CameraInput[], workers: readonly WorkerInput[]): AssignmentResult {
  const ordered = [...cameras].sort(byAge);
  const open = workers.filter((w) => w.assignable && w.capacity > 0);
  const capacity = new Map(open.map((w) => [w.name, w.capacity]));
  const load = new Map<string, number>(workers.map((w) => [w.name, 0]));
  const assigned = new Map<string, string>();
  const pending: CameraInput[] = [];

  for (const cam of ordered) {
    const cap = cam.current === undefined ? undefined : capacity.get(cam.current);
    const used = cam.current === undefined ? 0 : (load.get(cam.current) ?? 0);
    if (cam.current !== undefined && cap !== undefined && used < cap) {
      assigned.set(cam.key, cam.current);
      load.set(cam.current, used + 1);
    } else pending.push(cam);
  }

  const unassigned: string[] = [];
  for (const cam of pending) {
    let best: WorkerInput | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (const w of open) {
      const l = load.get(w.name) ?? 0;
      // Least loaded by fill ratio, so workers of different sizes fill evenly; ties go to the first worker.
      if (l < w.capacity && l / w.capacity < bestLoad) {
        best = w;
        bestLoad = l / w.capacity;
      }
    }
    if (best) {
      assigned.set(cam.key, best.name);
      load.set(best.name, (load.get(best.name) ?? 0) + 1);
    } else unassigned.push(cam.key);
  }
  return { assigned, unassigned, load };
}

/** Worker replicas a pool needs: enough for its cameras, within [min, max]. */
export function desiredReplicas(cameras: number, perWorker: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.ceil(cameras / perWorker)));
}
