// The worker's alarm outbox: alarms the broker has not yet confirmed, in arrival order, keyed by alarm id. Pure
// (no I/O, no timers): the publisher (amqp-publisher.ts) asks it what to send, tells it what was sent, and settles
// each send with the broker's confirm or nack. An entry leaves only on its confirm, so a lost connection or a nack
// puts it back in line and it is sent again: at-least-once, with the same id (the consumer deduplicates on it).
//
// Bounded: past `max` entries a new alarm is refused and counted. Refusing the newest, not dropping the oldest,
// because the oldest may be on the wire already (its confirm would then settle nothing) and it is the start of an
// incident, which a receiver needs more than the hundredth alarm of the same outage.

export type AddResult = "added" | "duplicate" | "overflow";

type Entry<T> = { item: T /** The send this entry waits on; 0 while it waits to be sent. */; attempt: number };

export type Outbox<T> = {
  /** Queues an alarm. The same id again while it is queued is one entry (the first). */
  add(id: string, item: T): AddResult;
  /** Entries not on the wire, oldest first (a snapshot: sending while iterating is fine). */
  unsent(): { id: string; item: T }[];
  /** Marks an entry as sent; the token it returns settles that send (and no later one). */
  sent(id: string): number;
  /** The broker has it: the entry goes (whichever send it was for). Returns whether it was here. */
  confirm(id: string): boolean;
  /** That send failed (a nack, or its channel closed): back in line, unless a newer send is already out. */
  retry(id: string, token: number): boolean;
  /** A new connection: nothing is on the wire any more, everything is sent again in order. */
  resendAll(): void;
  /** Whether an entry with this id is queued (sent or not). */
  has(id: string): boolean;
  /**
   * Removes an entry that is not on the wire (a publisher that drops old entries for new ones, or stale ones).
   * Returns false, and keeps it, when it is on the wire: its confirm may still come, and the broker may have it.
   */
  dropUnsent(id: string): boolean;
  readonly size: number;
  /** Entries on the wire, awaiting their confirm. */
  readonly inFlight: number;
  /** Alarms refused because the outbox was full, since it was made. */
  readonly overflowed: number;
};

export function createOutbox<T>(max: number): Outbox<T> {
  if (!Number.isInteger(max) || max < 1) throw new Error(`outbox size ${max}: must be a positive integer`);
  // A Map iterates in insertion order: FIFO by arrival, O(1) lookup by id.
  const entries = new Map<string, Entry<T>>();
  let nextToken = 1;
  let inFlight = 0;
  let overflowed = 0;

  return {
    add(id, item) {
      if (entries.has(id)) return "duplicate";
      if (entries.size >= max) {
        overflowed++;
        return "overflow";
      }
      entries.set(id, { item, attempt: 0 });
      return "added";
    },
    unsent() {
      const out: { id: string; item: T }[] = [];
      for (const [id, e] of entries) if (e.attempt === 0) out.push({ id, item: e.item });
      return out;
    },
    sent(id) {
      const e = entries.get(id);
      if (!e) throw new Error(`outbox: ${id} is not queued`);
      if (e.attempt === 0) inFlight++;
      e.attempt = nextToken++;
      return e.attempt;
    },
    confirm(id) {
      const e = entries.get(id);
      if (!e) return false;
      if (e.attempt !== 0) inFlight--;
      entries.delete(id);
      return true;
    },
    retry(id, token) {
      const e = entries.get(id);
      if (!e || e.attempt !== token) return false;
      e.attempt = 0;
      inFlight--;
      return true;
    },
    resendAll() {
      for (const e of entries.values()) e.attempt = 0;
      inFlight = 0;
    },
    has: (id) => entries.has(id),
    dropUnsent(id) {
      const e = entries.get(id);
      if (e?.attempt !== 0) return false;
      entries.delete(id);
      return true;
    },
    get size() {
      return entries.size;
    },
    get inFlight() {
      return inFlight;
    },
    get overflowed() {
      return overflowed;
    },
  };
}
