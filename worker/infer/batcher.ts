// Dynamic batching, the way inference servers do it (Triton's dynamic batcher, DeepStream's nvstreammux without a
// timeout): calls that arrive while the model is busy wait, and the next model run takes all of them at once, up
// to maxBatch. Under light load a frame runs alone at once (no added latency); under load batches fill by
// themselves. By default no timer ever holds a frame back to wait for company. With maxDelayMs (Triton's
// max_queue_delay, DeepStream's batched-push-timeout) a run waits for a full batch up to that long after its
// oldest frame arrived: on a GPU, which finishes a frame long before the next camera's arrives, batches would
// otherwise stay at one.

export type Batcher<I, O> = {
  submit(item: I): Promise<O>;
  /** Resolves once nothing is queued or running. */
  idle(): Promise<void>;
  readonly stats: { runs: number; items: number };
};

export type BatcherOptions = { maxDelayMs?: number; now?: () => number };

export function createBatcher<I, O>(
  maxBatch: number,
  runBatch: (items: I[]) => Promise<O[]>,
  { maxDelayMs = 0, now = () => performance.now() }: BatcherOptions = {},
): Batcher<I, O> {
  if (!Number.isInteger(maxBatch) || maxBatch < 1)
    throw new Error(`maxBatch must be a positive integer, got ${maxBatch}`);
  if (!(maxDelayMs >= 0)) throw new Error(`maxDelayMs must be ≥ 0, got ${maxDelayMs}`);
  type Waiting = { item: I; at: number; resolve: (o: O) => void; reject: (e: unknown) => void };
  const queue: Waiting[] = [];
  const stats = { runs: 0, items: 0 };
  let running = false;
  let idleWaiters: (() => void)[] = [];
  let filled: (() => void) | undefined;

  /** Until the queue holds a full batch, or maxDelayMs after its oldest item arrived. */
  const fullOrDue = () =>
    new Promise<void>((resolve) => {
      const wait = (queue[0]?.at ?? now()) + maxDelayMs - now();
      if (queue.length >= maxBatch || wait <= 0) return resolve();
      const timer = setTimeout(() => {
        filled = undefined;
        resolve();
      }, wait);
      filled = () => {
        clearTimeout(timer);
        filled = undefined;
        resolve();
      };
    });

  const drain = async () => {
    running = true;
    while (queue.length > 0) {
      // One turn of the event loop first: calls already on their way (other cameras' frames arriving in the same
      // tick, or messages queued on a worker thread's port) join this batch.
      await new Promise<void>((r) => setImmediate(r));
      if (maxDelayMs > 0) await fullOrDue();
      const batch = queue.splice(0, maxBatch);
      stats.runs++;
      stats.items += batch.length;
      try {
        const out = await runBatch(batch.map((w) => w.item));
        if (out.length !== batch.length) throw new Error(`batch of ${batch.length} gave ${out.length} results`);
        for (let i = 0; i < batch.length; i++) (batch[i] as Waiting).resolve(out[i] as O);
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    running = false;
    for (const w of idleWaiters) w();
    idleWaiters = [];
  };

  return {
    stats,
    idle: () => (running || queue.length ? new Promise<void>((r) => idleWaiters.push(r)) : Promise.resolve()),
    submit: (item) =>
      new Promise<O>((resolve, reject) => {
        queue.push({ item, at: now(), resolve, reject });
        if (queue.length >= maxBatch) filled?.();
        if (!running) void drain();
      }),
  };
}
