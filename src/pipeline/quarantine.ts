// Corrupt data, quarantined (onCorrupt: 'skip'): a piece (an Arrow record batch, a Parquet row
// group's column chunk) or a whole shard that cannot be read is marked bad once, and every batch
// that needs its rows gets, in their place, copies of other rows of the same batch, so shapes, step
// counts and every other sample's exactly-once delivery hold.
//
// The rule (README, "Quarantine"): in a batch with q quarantined rows and g = size - q good rows,
// the k-th quarantined row (k = 0 .. q-1, in row order) holds the values of the (k mod g)-th good
// row; `ids` keep the plan's sample ids and batch.quarantined lists the replaced rows. A batch
// whose every row is quarantined holds zeros (fixed-width columns), empty rows (variable-length)
// and nulls (nullable columns). Which rows are bad depends only on the bytes, so the outcome is
// the same whatever the number of workers or the timing of I/O.
//
// Worker side: decodeQuarantined wraps one batch's decode. Main thread: QuarantineLedger logs each
// event once (stderr, optional JSON Lines file), counts the replaced rows, enforces
// maxQuarantined and lists the bad pieces for the resume state. Both share QuarantineFlags, one
// Int32 word per shard and per piece, so a piece found bad by one worker is skipped by the others
// and by a run resumed from a state that lists it, without reading it again.
import { appendFileSync } from 'node:fs';
import { ErrorCodes, GpufeedError, invalidOption, ioError, type ErrorCode } from '../errors.js';
import type { ManifestV1 } from '../dataset/types.js';
import type { SampleLocator, SampleLocation } from './sample-locator.js';

export type OnCorrupt = 'fail' | 'skip';

/** The errors that mean "these bytes cannot be read"; anything else (storage, options, bugs) still fails the batch. */
export const QUARANTINE_CODES: readonly ErrorCode[] = [ErrorCodes.HASH_MISMATCH, ErrorCodes.SHARD_CORRUPT, ErrorCodes.SHARD_MISSING];

/** The code of a corrupt-data error, or undefined when `err` is another kind. */
export function corruptCode(err: unknown): ErrorCode | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return QUARANTINE_CODES.find((c) => c === code);
}

/** A failure that belongs to a whole shard (its lease or its open), not to one of its pieces. */
export class ShardFailure {
  constructor(readonly shard: number, readonly error: unknown) {}
}

/**
 * A failed lease of `shards` (a fetch whose hash or size is wrong): a ShardFailure of the shard its
 * error names, so that shard is marked without fetching it again to find out; else the error.
 */
export function leaseFailure(err: unknown, shards: readonly number[], manifest: ManifestV1): unknown {
  const path = (err as { details?: { shard?: unknown } } | null)?.details?.shard;
  const index = shards.find((i) => manifest.shards[i]!.path === path);
  return index === undefined || !corruptCode(err) ? err : new ShardFailure(index, err);
}

/** A quarantined piece: `unit` is the record batch / row group, or -1 for the whole shard. */
export interface QuarantineEntry {
  shard: number;
  unit: number;
  code: ErrorCode;
}

/** What a worker found (posted to the main thread once per newly marked piece). */
export interface QuarantineEvent extends QuarantineEntry {
  message: string;
}

/** How a resume state lists the quarantined pieces (ResumeState.quarantined, version 3). */
export interface QuarantineStateEntry {
  /** Shard index (manifest order) and its path, checked on resume. */
  shard: number;
  path: string;
  /** Record batch / row group; absent for the whole shard. */
  unit?: number;
  code: string;
}

export interface QuarantineOptions {
  onCorrupt: OnCorrupt;
  /** Replaced rows per epoch on this rank allowed before GPUFEED_QUARANTINE_LIMIT: a count, or a fraction (< 1) of the epoch's rows. */
  maxQuarantined: number;
  quarantineLog?: string;
}

export function resolveQuarantineOptions(o: { onCorrupt?: unknown; maxQuarantined?: unknown; quarantineLog?: unknown }): QuarantineOptions {
  const onCorrupt = o.onCorrupt ?? 'fail';
  if (onCorrupt !== 'fail' && onCorrupt !== 'skip') throw invalidOption('onCorrupt', `must be 'fail' or 'skip', got ${JSON.stringify(onCorrupt)}`);
  const max = o.maxQuarantined ?? Infinity;
  if (typeof max !== 'number' || Number.isNaN(max) || max < 0 || (max >= 1 && max !== Infinity && !Number.isInteger(max))) {
    throw invalidOption('maxQuarantined', `must be a count (an integer >= 0) or a fraction of the epoch's samples (0 < f < 1), got ${String(max)}`);
  }
  if (onCorrupt === 'fail' && (o.maxQuarantined !== undefined || o.quarantineLog !== undefined)) {
    throw invalidOption(o.maxQuarantined !== undefined ? 'maxQuarantined' : 'quarantineLog', "applies only with onCorrupt: 'skip'");
  }
  if (o.quarantineLog !== undefined && (typeof o.quarantineLog !== 'string' || o.quarantineLog.length === 0)) {
    throw invalidOption('quarantineLog', 'must be a file path');
  }
  const out: QuarantineOptions = { onCorrupt, maxQuarantined: max };
  if (typeof o.quarantineLog === 'string') out.quarantineLog = o.quarantineLog;
  return out;
}

/** Flag words: per shard, one for the shard, then one per unit (record batch / row group). */
export function quarantineWordLayout(manifest: ManifestV1): { bases: number[]; total: number } {
  const bases: number[] = [];
  let total = 0;
  for (const s of manifest.shards) {
    bases.push(total);
    total += 1 + (s.layout.kind === 'arrow' ? s.layout.batches.length : s.layout.rowGroups.length);
  }
  return { bases, total };
}

/** The shared buffers of one loader's quarantine (sent to each worker). */
export interface QuarantineBuffers {
  /** QuarantineFlags words. */
  flags: SharedArrayBuffer;
  /** One byte per slot row: 1 where the batch in that slot has a replaced row (written before publish). */
  marks: SharedArrayBuffer;
  /** Per slot (Int32): events the worker posted while decoding the batch in it, so the loader logs them before it delivers that batch. */
  posted: SharedArrayBuffer;
}

export function createQuarantineBuffers(manifest: ManifestV1, slots: number, batchSize: number): QuarantineBuffers {
  return {
    flags: new SharedArrayBuffer(4 * Math.max(1, quarantineWordLayout(manifest).total)), marks: new SharedArrayBuffer(Math.max(1, slots * batchSize)), posted: new SharedArrayBuffer(4 * slots),
  };
}

/** Bad shards and pieces, shared by the loader and its workers: 0 = not known bad, else 1 + the index of its code. */
export class QuarantineFlags {
  readonly #words: Int32Array;
  readonly #bases: number[];

  constructor(buffer: SharedArrayBuffer, manifest: ManifestV1) {
    this.#words = new Int32Array(buffer);
    this.#bases = quarantineWordLayout(manifest).bases;
  }

  shardBad(shard: number): boolean {
    return Atomics.load(this.#words, this.#bases[shard]!) !== 0;
  }

  /** Piece `unit` of `shard` is bad, or the whole shard is. */
  bad(shard: number, unit: number): boolean {
    const base = this.#bases[shard]!;
    return Atomics.load(this.#words, base) !== 0 || Atomics.load(this.#words, base + 1 + unit) !== 0;
  }

  /** Marks a piece (unit -1: the shard) bad; true when this call marked it (the caller reports it), false when it was already. */
  mark(shard: number, unit: number, code: ErrorCode): boolean {
    const word = this.#bases[shard]! + 1 + unit;
    const index = QUARANTINE_CODES.indexOf(code);
    return Atomics.compareExchange(this.#words, word, 0, 1 + Math.max(0, index)) === 0;
  }

  /** Every marked piece, in manifest order. */
  entries(): QuarantineEntry[] {
    const out: QuarantineEntry[] = [];
    this.#bases.forEach((base, shard) => {
      const end = shard + 1 < this.#bases.length ? this.#bases[shard + 1]! : this.#words.length;
      for (let w = base; w < end; w++) {
        const v = Atomics.load(this.#words, w);
        if (v !== 0) out.push({ shard, unit: w - base - 1, code: QUARANTINE_CODES[v - 1] ?? ErrorCodes.SHARD_CORRUPT });
      }
    });
    return out;
  }
}

/**
 * Sets marks[i] = 1 for each row of `ids` whose piece is known bad (0 elsewhere); returns how many.
 */
export function markRows(ids: ArrayLike<number>, locator: SampleLocator, flags: QuarantineFlags, marks: Uint8Array): number {
  const loc: SampleLocation = { shard: 0, unit: 0, row: 0 };
  let n = 0;
  for (let i = 0; i < ids.length; i++) {
    locator.locateInto(ids[i]!, loc);
    const bad = flags.bad(loc.shard, loc.unit);
    marks[i] = bad ? 1 : 0;
    if (bad) n += 1;
  }
  return n;
}

/** The rule: the k-th marked row reads the (k mod g)-th unmarked row's sample (g unmarked rows, g > 0). */
export function substituteIds(ids: ArrayLike<number>, marks: Uint8Array): number[] {
  const good: number[] = [];
  for (let i = 0; i < ids.length; i++) if (marks[i] === 0) good.push(ids[i]!);
  const out = new Array<number>(ids.length);
  let k = 0;
  for (let i = 0; i < ids.length; i++) out[i] = marks[i] === 0 ? ids[i]! : good[k++ % good.length]!;
  return out;
}

/** How the worker decodes one batch (decode-worker.ts supplies them). */
export interface QuarantineDecode<R> {
  /** Decodes these sample ids into the slot, row i from sourceIds[i]; may throw a ShardFailure. */
  fill(sourceIds: readonly number[]): Promise<R>;
  /** Reads the rows `ids` of one piece into the slot (the result is dropped): opening its shard throws a ShardFailure. */
  probe(shard: number, ids: readonly number[]): Promise<void>;
  /** Every row is quarantined: the slot gets zeros. */
  zero(): void;
  /** A newly marked piece, for the main thread's log. */
  report(event: QuarantineEvent): void;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One batch with onCorrupt 'skip': marks the rows of known bad pieces, decodes the rest with the
 * substitution rule, and when a decode fails on corrupt data, finds the bad pieces by reading
 * each piece of the batch alone, marks them and decodes again. Each round marks at least one more
 * piece, so it ends. Errors that are not corrupt data, or that no single piece reproduces, fail
 * the batch as before. `marks` (the slot's rows) ends up marking the replaced rows.
 */
export async function decodeQuarantined<R>(ids: readonly number[], locator: SampleLocator, flags: QuarantineFlags, marks: Uint8Array, d: QuarantineDecode<R>): Promise<{ result?: R; quarantined: number }> {
  const loc: SampleLocation = { shard: 0, unit: 0, row: 0 };
  for (let round = 0; round <= ids.length + 1; round++) {
    const quarantined = markRows(ids, locator, flags, marks);
    if (quarantined === ids.length && ids.length > 0) {
      d.zero();
      return { quarantined };
    }
    const source = quarantined === 0 ? ids : substituteIds(ids, marks);
    let failure: unknown;
    try {
      return { result: await d.fill(source), quarantined };
    } catch (err) {
      failure = err;
    }
    if (failure instanceof ShardFailure) {
      const code = corruptCode(failure.error);
      if (!code) throw failure.error;
      if (flags.mark(failure.shard, -1, code)) d.report({ shard: failure.shard, unit: -1, code, message: messageOf(failure.error) });
      continue;
    }
    if (!corruptCode(failure)) throw failure;
    // Which pieces? Each piece of the batch alone, in row order.
    const pieces = new Map<string, { shard: number; unit: number; ids: number[] }>();
    for (const id of source) {
      locator.locateInto(id, loc);
      const key = `${loc.shard}:${loc.unit}`;
      let p = pieces.get(key);
      if (!p) pieces.set(key, (p = { shard: loc.shard, unit: loc.unit, ids: [] }));
      p.ids.push(id);
    }
    let found = false;
    for (const p of pieces.values()) {
      if (flags.bad(p.shard, p.unit)) {
        found = true;
        continue;
      }
      try {
        await d.probe(p.shard, p.ids);
      } catch (err) {
        const shardLevel = err instanceof ShardFailure;
        const cause = shardLevel ? err.error : err;
        const code = corruptCode(cause);
        if (!code) throw cause;
        found = true;
        const unit = shardLevel ? -1 : p.unit;
        if (flags.mark(p.shard, unit, code)) d.report({ shard: p.shard, unit, code, message: messageOf(cause) });
      }
    }
    if (!found) throw failure;
  }
  throw new GpufeedError(ErrorCodes.INTERNAL, 'quarantine: a batch kept failing after every piece of it was marked');
}

/** Rows [start, end) of a shard that an entry covers. */
export function entryRows(manifest: ManifestV1, e: { shard: number; unit: number }): [number, number] {
  const s = manifest.shards[e.shard]!;
  if (e.unit < 0) return [0, s.rows];
  const units = s.layout.kind === 'arrow' ? s.layout.batches : s.layout.rowGroups;
  let start = 0;
  for (let u = 0; u < e.unit; u++) start += units[u]!.rows;
  return [start, start + units[e.unit]!.rows];
}

/** The entries of a resume state, checked against this dataset (they name its shards and pieces). */
export function entriesFromState(manifest: ManifestV1, list: unknown): QuarantineEntry[] {
  const bad = (message: string): GpufeedError => new GpufeedError(ErrorCodes.RESUME_MISMATCH, `resume state quarantined: ${message}`, { field: 'quarantined' });
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw bad('must be an array');
  return list.map((raw: unknown, i) => {
    const e = raw as Partial<QuarantineStateEntry> | null;
    if (!e || typeof e !== 'object') throw bad(`entry ${i} is not an object`);
    const shard = e.shard;
    const entry = typeof shard === 'number' && Number.isInteger(shard) ? manifest.shards[shard] : undefined;
    if (!entry || entry.path !== e.path) throw bad(`entry ${i} names shard ${JSON.stringify(shard)} (${JSON.stringify(e.path)}), which this dataset does not have at that index`);
    const units = entry.layout.kind === 'arrow' ? entry.layout.batches.length : entry.layout.rowGroups.length;
    if (e.unit !== undefined && !(Number.isInteger(e.unit) && e.unit >= 0 && e.unit < units)) throw bad(`entry ${i}: shard ${entry.path} has no piece ${JSON.stringify(e.unit)}`);
    const code = QUARANTINE_CODES.find((c) => c === e.code) ?? ErrorCodes.SHARD_CORRUPT;
    return { shard: shard as number, unit: e.unit ?? -1, code };
  });
}

/** The main thread's side: log, counts, the limit, the state's list. */
export class QuarantineLedger {
  readonly options: QuarantineOptions;
  readonly flags: QuarantineFlags;
  readonly marks: Uint8Array;
  readonly posted: Int32Array;
  /** Events arrived per seq, and a waiter for the rest (eventsOf). */
  readonly #arrived = new Map<number, number>();
  readonly #waiters = new Map<number, { want: number; resolve: () => void }>();
  readonly #manifest: ManifestV1;
  readonly #batchSize: number;
  readonly #rank: number;
  /** Rows a batch of this rank's epoch holds in all (the base of a fractional maxQuarantined). */
  readonly #epochRows: number;
  #epoch = -1;
  #epochCount = 0;
  /** Replaced rows in the batches delivered. */
  samples = 0;
  /** Pieces this loader found bad by reading them (not those its resume state listed). */
  events = 0;

  constructor(manifest: ManifestV1, buffers: QuarantineBuffers, options: QuarantineOptions, init: { batchSize: number; rank: number; stepsPerEpoch: number; resumed: QuarantineEntry[] }) {
    this.options = options;
    this.#manifest = manifest;
    this.flags = new QuarantineFlags(buffers.flags, manifest);
    this.marks = new Uint8Array(buffers.marks);
    this.posted = new Int32Array(buffers.posted);
    this.#batchSize = init.batchSize;
    this.#rank = init.rank;
    this.#epochRows = init.batchSize * init.stepsPerEpoch;
    for (const e of init.resumed) this.flags.mark(e.shard, e.unit, e.code);
  }

  /** The replaced rows of the batch in `slot` (rows long). */
  rowsOf(slot: number, rows: number): number[] {
    const out: number[] = [];
    const at = slot * this.#batchSize;
    for (let i = 0; i < rows; i++) if (this.marks[at + i] !== 0) out.push(i);
    return out;
  }

  /** Resolves once the `want` events posted for seq's batch have been logged (they are posted before it is published). */
  eventsOf(seq: number, want: number): Promise<void> | undefined {
    if ((this.#arrived.get(seq) ?? 0) >= want) {
      this.#arrived.delete(seq);
      return undefined;
    }
    return new Promise((resolve) => this.#waiters.set(seq, { want, resolve }));
  }

  /** The loader closes: nothing waits for events any more. */
  stopWaiting(): void {
    for (const w of this.#waiters.values()) w.resolve();
    this.#waiters.clear();
  }

  /** Logs a worker's event (each piece is marked, so reported, once per loader), met while decoding batch `seq`. */
  record(e: QuarantineEvent, seq = -1): void {
    this.#log(e);
    const n = (this.#arrived.get(seq) ?? 0) + 1;
    this.#arrived.set(seq, n);
    const w = this.#waiters.get(seq);
    if (w && n >= w.want) {
      this.#waiters.delete(seq);
      this.#arrived.delete(seq);
      w.resolve();
    }
  }

  #log(e: QuarantineEvent): void {
    this.events += 1;
    const shard = this.#manifest.shards[e.shard]!;
    const rows = entryRows(this.#manifest, e);
    let first = 0;
    for (let s = 0; s < e.shard; s++) first += this.#manifest.shards[s]!.rows;
    const piece = e.unit < 0 ? 'the whole shard' : shard.layout.kind === 'arrow' ? `record batch ${e.unit}` : `row group ${e.unit}`;
    process.stderr.write(`gpufeed: rank ${this.#rank}: quarantined shard ${shard.path} rows [${rows[0]}, ${rows[1]}) (${piece}, samples [${first + rows[0]}, ${first + rows[1]})): ${e.code}: ${e.message}\n`);
    if (this.options.quarantineLog) {
      const line = {
        time: new Date().toISOString(), rank: this.#rank, shard: shard.path, shardIndex: e.shard, piece: e.unit < 0 ? null : e.unit,
        rows: rows, samples: [first + rows[0], first + rows[1]], code: e.code, message: e.message,
      };
      try {
        appendFileSync(this.options.quarantineLog, `${JSON.stringify(line)}\n`);
      } catch (err) {
        process.stderr.write(`gpufeed: ${ioError('append to the quarantine log', this.options.quarantineLog, err).message}\n`);
      }
    }
  }

  /** Counts a delivered batch's replaced rows; throws GPUFEED_QUARANTINE_LIMIT past maxQuarantined. */
  delivered(epoch: number, step: number, replaced: number): void {
    if (epoch !== this.#epoch) {
      this.#epoch = epoch;
      this.#epochCount = 0;
    }
    if (replaced === 0) return;
    this.#epochCount += replaced;
    const max = this.options.maxQuarantined;
    const limit = max > 0 && max < 1 ? Math.floor(max * this.#epochRows) : max;
    if (this.#epochCount > limit) {
      throw new GpufeedError(
        ErrorCodes.QUARANTINE_LIMIT,
        `option maxQuarantined: ${this.#epochCount} rows quarantined on rank ${this.#rank} in epoch ${epoch} by step ${step}, more than the limit of ${limit}` +
          `${max > 0 && max < 1 ? ` (${max} of the epoch's ${this.#epochRows} rows)` : ''}; the dataset is too damaged to train on (quarantined: ${this.describe()})`,
        { option: 'maxQuarantined', limit, quarantined: this.#epochCount, epoch, step },
      );
    }
    this.samples += replaced;
  }

  /** A short list of the bad pieces, for messages. */
  describe(): string {
    const list = this.flags.entries();
    const shown = list.slice(0, 5).map((e) => `${this.#manifest.shards[e.shard]!.path}${e.unit < 0 ? '' : `#${e.unit}`} ${e.code}`);
    return `${shown.join(', ')}${list.length > 5 ? `, and ${list.length - 5} more` : ''}`;
  }

  /** The resume state's list: every piece marked bad so far on this rank. */
  stateEntries(): QuarantineStateEntry[] {
    return this.flags.entries().map((e) => {
      const out: QuarantineStateEntry = { shard: e.shard, path: this.#manifest.shards[e.shard]!.path, code: e.code };
      if (e.unit >= 0) out.unit = e.unit;
      return out;
    });
  }
}
