// Shares shard leases between the batches in flight. Consecutive batches mostly read the same few
// shards, so one lease per shard is taken when the first batch needs it and given back when the
// last batch using it is done: no acquire (a stat or a cache lookup, and an event-loop round trip)
// per batch. A few leases no batch uses any more are kept (most recent first) for the next
// batches; bounded, so a cache can still evict what the plan has moved past.
import type { ShardLease, ShardSource } from './shard-source.js';

interface Entry {
  refs: number;
  lease: ShardLease | undefined;
  pending: Promise<ShardLease>;
}

/** Idle leases a table keeps by default (the cache budget counts them: lease-bound.ts). */
export const KEPT_IDLE_LEASES = 4;

export class LeaseTable {
  readonly #source: ShardSource;
  readonly #entries = new Map<number, Entry>();
  /** Leases with no user, oldest first, at most #keepIdle of them. */
  readonly #idle = new Map<number, ShardLease>();
  readonly #keepIdle: number;

  constructor(source: ShardSource, keepIdle = KEPT_IDLE_LEASES) {
    this.#source = source;
    this.#keepIdle = keepIdle;
  }

  /** The lease of shard `index`, held until release(index) is called once for this call. */
  acquire(index: number): Promise<ShardLease> | ShardLease {
    const hit = this.#entries.get(index);
    if (hit) {
      hit.refs += 1;
      return hit.lease ?? hit.pending;
    }
    const idle = this.#idle.get(index);
    if (idle) {
      this.#idle.delete(index);
      this.#entries.set(index, { refs: 1, lease: idle, pending: Promise.resolve(idle) });
      return idle;
    }
    const entry: Entry = { refs: 1, lease: undefined, pending: undefined as unknown as Promise<ShardLease> };
    entry.pending = this.#source.acquire(index).then(
      (lease) => {
        if (this.#entries.get(index) === entry) entry.lease = lease;
        else lease.release(); // every user went away while it was pending
        return lease;
      },
      (err: unknown) => {
        if (this.#entries.get(index) === entry) this.#entries.delete(index);
        throw err;
      },
    );
    this.#entries.set(index, entry);
    return entry.pending;
  }

  release(index: number): void {
    const entry = this.#entries.get(index);
    if (!entry) return;
    entry.refs -= 1;
    if (entry.refs > 0) return;
    this.#entries.delete(index);
    if (!entry.lease) return; // still pending: released when it arrives
    this.#idle.set(index, entry.lease);
    while (this.#idle.size > this.#keepIdle) {
      const [oldest, lease] = this.#idle.entries().next().value as [number, ShardLease];
      this.#idle.delete(oldest);
      lease.release();
    }
  }

  /** Gives back the idle leases; leases in use go back when their users release them. */
  close(): void {
    for (const lease of this.#idle.values()) lease.release();
    this.#idle.clear();
  }

  /** Shards currently leased. */
  get size(): number {
    return this.#entries.size;
  }
}
