// The shared control block of a loader and its decode workers: which batch slot is free, being
// filled, ready or held by the consumer; which batch (seq) each slot holds; the next seq to decode;
// and the decoded batches' sample ids and counters. Workers schedule themselves from it, so the
// main thread does no per-batch work but a wait and a release.
//
// seq numbers the batches of this loader's run in plan order: seq 0 is the start (or resume) point,
// seq k the k-th (epoch, step) after it. A worker takes a free slot FIRST and only then claims the
// next seq, so every claimed seq has a slot: the lowest seq the consumer waits for is always being
// decoded, never stuck behind later ones.

/** Slot states (Int32 words). */
export const FREE = 0;
export const FILLING = 1;
export const READY = 2;
export const HELD = 3;

/** Header words of the Int32 region. */
const STOP = 0;
/** Bumped (and notified) each time a slot becomes FREE; workers waiting for a slot wait on it. */
const FREE_GEN = 1;
/** Requests a worker posted to the main thread that it has not yet answered (remote shards). */
const PENDING = 2;
/**
 * Bumped (and notified) when the consumer takes a batch, starts or stops waiting, or frees a
 * one-off slot: a worker waiting to allocate a one-off slot (oversize-batch.ts) waits on it.
 */
const CONSUMER_GEN = 3;
const HEADER = 8;

/** Words of the BigInt64 region: seqs and byte counts that may pass 2^31. */
const NEXT_SEQ = 0;
/** Bytes of one-off slots allocated and not yet freed. */
const ONE_OFF_BYTES = 1;
/** Seqs the consumer has taken (hold), i.e. the next seq it takes. */
const CONSUMED = 2;
/** 1 + the seq the consumer is blocked waiting for; 0 while it is not waiting. */
const WAITING = 3;
const BIG_WORDS = 4;

/** Per-worker counters (Float64, written by their worker only). */
export const STAT_BATCHES = 0;
export const STAT_ROWS = 1;
export const STAT_BYTES = 2;
export const STAT_READ_NS = 3;
export const STAT_DECODE_NS = 4;
export const STAT_SHARD_WAIT_NS = 5;
/**
 * What the worker is doing now, for stall reports (metrics/stall.ts): 1 + the seq it works on
 * (0: none), since when (Date.now(), ms: the threads share no performance clock) and in which
 * phase (BUSY_SHARDS: waiting for its shards' leases, BUSY_DECODE: reading and decoding).
 */
export const STAT_BUSY_SEQ = 6;
export const STAT_BUSY_SINCE = 7;
export const STAT_BUSY_PHASE = 8;
export const STAT_FIELDS = 9;
export const BUSY_SHARDS = 1;
export const BUSY_DECODE = 2;

export interface ControlBlockInit {
  slots: number;
  workers: number;
  batchSize: number;
}

/** The buffers of a control block, as sent to each worker (structured clone shares them). */
export interface ControlBuffers extends ControlBlockInit {
  ints: SharedArrayBuffer;
  nextSeq: SharedArrayBuffer;
  floats: SharedArrayBuffer;
}

type WaitAsync = (typedArray: Int32Array, index: number, value: number) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
// Node 20 has Atomics.waitAsync; the ES2023 lib this project compiles against does not declare it.
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

export class ControlBlock {
  readonly slots: number;
  readonly workers: number;
  readonly batchSize: number;
  /** Entries of the ready table: more than the seqs that can be claimed and not yet consumed. */
  readonly ring: number;
  readonly buffers: ControlBuffers;
  readonly #ints: Int32Array;
  readonly #next: BigInt64Array;
  /** slotSeq[slots], then stats[workers * STAT_FIELDS], then ids[slots * batchSize]. */
  readonly #floats: Float64Array;
  readonly #stateAt: number;
  readonly #rowsAt: number;
  readonly #errorAt: number;
  /** Per slot: the one-off slab id the batch in it was decoded into instead, or 0. */
  readonly #oneOffAt: number;
  readonly #readyAt: number;
  readonly #statsAt: number;
  readonly #idsAt: number;

  constructor(init: ControlBlockInit | ControlBuffers) {
    this.slots = init.slots;
    this.workers = init.workers;
    this.batchSize = init.batchSize;
    this.ring = init.slots + init.workers + 1;
    this.#stateAt = HEADER;
    this.#rowsAt = this.#stateAt + this.slots;
    this.#errorAt = this.#rowsAt + this.slots;
    this.#oneOffAt = this.#errorAt + this.slots;
    this.#readyAt = this.#oneOffAt + this.slots;
    const intWords = this.#readyAt + this.ring;
    this.#statsAt = this.slots;
    this.#idsAt = this.#statsAt + this.workers * STAT_FIELDS;
    const floatWords = this.#idsAt + this.slots * this.batchSize;
    const b = init as Partial<ControlBuffers>;
    this.buffers = b.ints && b.nextSeq && b.floats
      ? (init as ControlBuffers)
      : {
          slots: init.slots, workers: init.workers, batchSize: init.batchSize,
          ints: new SharedArrayBuffer(intWords * 4), nextSeq: new SharedArrayBuffer(BIG_WORDS * 8), floats: new SharedArrayBuffer(floatWords * 8),
        };
    this.#ints = new Int32Array(this.buffers.ints);
    this.#next = new BigInt64Array(this.buffers.nextSeq);
    this.#floats = new Float64Array(this.buffers.floats);
  }

  // --- stop -----------------------------------------------------------------------------------

  get stopped(): boolean {
    return Atomics.load(this.#ints, STOP) !== 0;
  }

  /** Tells every worker to stop and wakes every waiter (workers and the consumer). */
  stop(): void {
    Atomics.store(this.#ints, STOP, 1);
    Atomics.add(this.#ints, FREE_GEN, 1);
    Atomics.notify(this.#ints, FREE_GEN);
    this.#consumerChanged();
    this.wakeConsumer();
  }

  /** Wakes a consumer waiting in waitReady (it then re-checks why it waits). */
  wakeConsumer(): void {
    for (let i = 0; i < this.ring; i++) Atomics.notify(this.#ints, this.#readyAt + i);
  }

  // --- worker side ----------------------------------------------------------------------------

  /** A FREE slot, now FILLING; -1 when stopped. Blocks this (worker) thread until there is one. */
  takeSlot(): number {
    // The generation is read before the scan: a slot freed after the scan changes it, so the
    // wait below returns at once instead of missing the wake-up.
    const gen = Atomics.load(this.#ints, FREE_GEN);
    const s = this.#tryTake();
    return s !== undefined ? s : this.#waitForSlot(gen);
  }

  /**
   * Waits for a FREE slot (or stop) in this worker's thread: a blocking wait on the free
   * generation with a timeout that grows from 50 us to 1 ms, so a slot freed by the consumer is
   * taken within a fraction of a batch while the ring is busy and an idle ring costs few wake-ups.
   * Nothing else is pending in the worker while it waits for a slot (its lease requests are
   * answered before it decodes), so blocking its event loop loses nothing.
   */
  #waitForSlot(gen: number): number {
    for (let timeout = 0.05; ; timeout = Math.min(1, timeout * 2)) {
      Atomics.wait(this.#ints, FREE_GEN, gen, timeout);
      gen = Atomics.load(this.#ints, FREE_GEN);
      const s = this.#tryTake();
      if (s !== undefined) return s;
    }
  }

  #tryTake(): number | undefined {
    if (this.stopped) return -1;
    for (let s = 0; s < this.slots; s++) {
      if (Atomics.compareExchange(this.#ints, this.#stateAt + s, FREE, FILLING) === FREE) return s;
    }
    return undefined;
  }

  /** The next seq in plan order (claim it only while holding a slot). */
  claimSeq(): number {
    return Number(Atomics.add(this.#next, NEXT_SEQ, 1n));
  }

  /** The sample ids region of a slot (batchSize entries). */
  idsOf(slot: number): Float64Array {
    return this.#floats.subarray(this.#idsAt + slot * this.batchSize, this.#idsAt + (slot + 1) * this.batchSize);
  }

  /**
   * Publishes `seq` in `slot` (rows decoded, or failed) and wakes the consumer if it waits for
   * this very seq. `oneOffSlab`: the batch was decoded into that one-off slab instead of the slot
   * (the slot holds only its ids).
   *
   * A consumer that does not wait for `seq` is not woken: waking it costs a task on its event loop
   * and, with the cores full, lets it preempt this thread. It cannot miss the batch: it says which
   * seq it waits for (setWaiting) before it checks the ready word and waits on it, and this thread
   * stores the ready word before it reads what the consumer waits for; both are sequentially
   * consistent, so either this thread sees the wait and notifies, or the consumer's check sees the
   * batch and does not wait.
   */
  publish(slot: number, seq: number, rows: number, failed: boolean, oneOffSlab = 0): void {
    this.#floats[slot] = seq;
    this.#ints[this.#rowsAt + slot] = rows;
    this.#ints[this.#errorAt + slot] = failed ? 1 : 0;
    this.#ints[this.#oneOffAt + slot] = oneOffSlab;
    Atomics.store(this.#ints, this.#stateAt + slot, READY);
    const r = this.#readyAt + (seq % this.ring);
    Atomics.store(this.#ints, r, slot + 1);
    if (Atomics.load(this.#next, WAITING) === BigInt(seq + 1)) {
      Atomics.notify(this.#ints, r);
    }
  }

  /** This worker's counters. */
  statsOf(worker: number): Float64Array {
    return this.#floats.subarray(this.#statsAt + worker * STAT_FIELDS, this.#statsAt + (worker + 1) * STAT_FIELDS);
  }

  // --- one-off slots (oversize-batch.ts) -------------------------------------------------------

  /** Seqs the consumer has taken: every seq below it was handed out (or failed). */
  get consumed(): number {
    return Number(Atomics.load(this.#next, CONSUMED));
  }

  /** The seq the consumer is blocked waiting for, or -1. */
  get waitingFor(): number {
    return Number(Atomics.load(this.#next, WAITING)) - 1;
  }

  get oneOffBytes(): number {
    return Number(Atomics.load(this.#next, ONE_OFF_BYTES));
  }

  /** Counts `bytes` of one-off slots if the total stays within `limit`; false (nothing counted) if not. */
  reserveOneOff(bytes: number, limit: number): boolean {
    const b = BigInt(bytes);
    for (;;) {
      const cur = Atomics.load(this.#next, ONE_OFF_BYTES);
      if (cur + b > BigInt(limit)) return false;
      if (Atomics.compareExchange(this.#next, ONE_OFF_BYTES, cur, cur + b) === cur) return true;
    }
  }

  /** Uncounts a one-off slot that was freed. */
  releaseOneOff(bytes: number): void {
    Atomics.sub(this.#next, ONE_OFF_BYTES, BigInt(bytes));
    this.#consumerChanged();
  }

  /** The consumer-side generation a worker reads before checking, then waits on. */
  get consumerGen(): number {
    return Atomics.load(this.#ints, CONSUMER_GEN);
  }

  /** Blocks this (worker) thread until the consumer side changes or `timeoutMs` passes. */
  waitConsumerChange(gen: number, timeoutMs: number): void {
    Atomics.wait(this.#ints, CONSUMER_GEN, gen, timeoutMs);
  }

  #consumerChanged(): void {
    Atomics.add(this.#ints, CONSUMER_GEN, 1);
    Atomics.notify(this.#ints, CONSUMER_GEN);
  }

  requestPosted(): void {
    Atomics.add(this.#ints, PENDING, 1);
  }

  // --- consumer side --------------------------------------------------------------------------

  /** The slot holding seq (READY), or -1 when it is not ready yet. */
  readySlot(seq: number): number {
    return Atomics.load(this.#ints, this.#readyAt + (seq % this.ring)) - 1;
  }

  /** The consumer is blocked waiting for `seq` (or, with -1, no longer waits). */
  setWaiting(seq: number): void {
    Atomics.store(this.#next, WAITING, BigInt(seq + 1));
    this.#consumerChanged();
  }

  /** Waits until seq may be ready (or a wake-up); the caller re-checks. */
  waitReady(seq: number): Promise<unknown> | undefined {
    const w = waitAsync(this.#ints, this.#readyAt + (seq % this.ring), 0);
    return w.async ? w.value : undefined;
  }

  /** Takes seq's slot for the consumer: READY -> HELD. */
  hold(seq: number, slot: number): { rows: number; failed: boolean; oneOffSlab: number } {
    Atomics.store(this.#ints, this.#readyAt + (seq % this.ring), 0);
    const got = this.#floats[slot];
    if (got !== seq) throw new Error(`control block: slot ${slot} holds seq ${got}, expected ${seq}`);
    Atomics.store(this.#ints, this.#stateAt + slot, HELD);
    Atomics.store(this.#next, CONSUMED, BigInt(seq + 1));
    this.#consumerChanged();
    return { rows: this.#ints[this.#rowsAt + slot]!, failed: this.#ints[this.#errorAt + slot] !== 0, oneOffSlab: this.#ints[this.#oneOffAt + slot]! };
  }

  /** The one-off slab of the batch in `slot`, or 0 (read by close for batches never taken). */
  oneOffSlabOf(slot: number): number {
    return Atomics.load(this.#ints, this.#oneOffAt + slot);
  }

  /**
   * Gives a slot back to the workers: -> FREE. No notify: a worker waiting for a slot polls (see
   * #waitForSlot), because waking a worker from here lets it preempt the consumer's thread when
   * the decode threads fill the cores: the consumer then waits a scheduler time slice for its own
   * next batch, even with several batches ready.
   */
  free(slot: number): void {
    Atomics.store(this.#ints, this.#oneOffAt + slot, 0);
    Atomics.store(this.#ints, this.#stateAt + slot, FREE);
    Atomics.add(this.#ints, FREE_GEN, 1);
  }

  stateOf(slot: number): number {
    return Atomics.load(this.#ints, this.#stateAt + slot);
  }

  count(state: number): number {
    let n = 0;
    for (let s = 0; s < this.slots; s++) if (this.stateOf(s) === state) n++;
    return n;
  }

  /** Requests posted by workers not yet answered; the consumer yields to the event loop while any are. */
  get pendingRequests(): number {
    return Atomics.load(this.#ints, PENDING);
  }

  requestHandled(): void {
    Atomics.sub(this.#ints, PENDING, 1);
  }

  /** Sum of every worker's counters. */
  totals(): Float64Array {
    const out = new Float64Array(STAT_FIELDS);
    for (let w = 0; w < this.workers; w++) {
      const s = this.statsOf(w);
      for (let f = 0; f < STAT_FIELDS; f++) out[f]! += s[f]!;
    }
    return out;
  }
}
