// One task at a time per key, latest state wins: while a key's task runs, only the newest value submitted for it
// waits (older ones are dropped unseen), and the running task can ask whether it has been superseded, so a task
// that awaited I/O does not act on a state that is no longer current. The same shape as a workqueue's per-key
// "dirty" set, for values instead of keys. Pure: no timers, no I/O.

export type KeyedLatest<T> = {
  submit(key: string, value: T): void;
  /** Resolves once no task runs or waits. */
  idle(): Promise<void>;
};

export function latestPerKey<T>(
  run: (key: string, value: T, superseded: () => boolean) => Promise<void>,
  onError: (key: string, err: unknown) => void = () => undefined,
): KeyedLatest<T> {
  const slots = new Map<string, { generation: number; next?: { value: T } }>();
  const idleWaiters: (() => void)[] = [];

  async function drive(key: string, slot: { generation: number; next?: { value: T } }, first: T): Promise<void> {
    let value = first;
    for (;;) {
      const generation = slot.generation;
      try {
        await run(key, value, () => slot.generation !== generation);
      } catch (err) {
        onError(key, err);
      }
      if (!slot.next) break;
      value = slot.next.value;
      delete slot.next;
    }
    slots.delete(key);
    if (slots.size === 0) for (const w of idleWaiters.splice(0)) w();
  }

  return {
    submit(key, value) {
      const slot = slots.get(key);
      if (slot) {
        slot.generation++;
        slot.next = { value };
        return;
      }
      const fresh = { generation: 0 };
      slots.set(key, fresh);
      void drive(key, fresh, value);
    },
    idle: () => (slots.size === 0 ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r))),
  };
}
