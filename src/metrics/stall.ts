// Stall diagnosis: what the batch the consumer waits for is waiting on. The report names the rank,
// epoch and step, the shards that batch needs and, for each, what holds it up: a storage request
// outstanding (its URI and attempt), a cache lock another process holds (its pid), a download
// running, a decode worker busy on it. The watch prints it as GPUFEED_STALL on stderr once the
// consumer has waited stallTimeout, and again every further interval; with stallAction 'fail' it
// ends the wait with that error instead, so the job restarts from its checkpoint.
import { ErrorCodes, GpufeedError } from '../errors.js';
import { readLockOwner } from '../cache/file-lock.js';
import { BUSY_DECODE, BUSY_SHARDS, STAT_BUSY_PHASE, STAT_BUSY_SEQ, STAT_BUSY_SINCE } from '../pipeline/control-block.js';
import type { LoaderProbe } from './probe.js';
import type { StallAction } from './options.js';

export type ShardWait =
  | { kind: 'storage'; uri: string; what: string; attempt: number; hedge: boolean; seconds: number }
  | { kind: 'cache-lock'; lockPath: string; pid: number | undefined; otherProcess: boolean; seconds: number }
  | { kind: 'download'; seconds: number }
  | { kind: 'decode'; worker: number; phase: 'shards' | 'decode'; seconds: number };

export interface StallShard {
  index: number;
  path: string;
  waits: ShardWait[];
}

export interface StallReport {
  rank: number;
  localRank: number;
  worldSize: number;
  dataset: string;
  /** The batch waited for (or, when the consumer does not wait, the one it takes next). */
  seq: number;
  epoch: number;
  step: number;
  waiting: boolean;
  waitedSeconds: number;
  shards: StallShard[];
  /** Every decode worker: the seq it works on (-1: none) and for how long. */
  workers: { worker: number; seq: number; phase: 'idle' | 'shards' | 'decode'; seconds: number }[];
  queue: { queued: number; filling: number; freeSlots: number; held: number; slots: number };
  /** Batches the decode workers finished so far. */
  decodedBatches: number;
  text: string;
}

const secs = (ms: number): number => Math.round(ms / 100) / 10;

/** `stall`: the watch's report past stallTimeout (GPUFEED_STALL); `diagnose`: one asked for (diagnose(), SIGUSR2). */
export async function diagnose(probe: LoaderProbe, dataset: string, kind: 'stall' | 'diagnose' = 'diagnose'): Promise<StallReport> {
  const now = Date.now();
  const w = probe.waiting();
  const seq = w?.seq ?? probe.nextSeq();
  const { epoch, step } = probe.position(seq);
  const manifest = probe.manifest;
  const inFlight = probe.requestLog?.inFlight() ?? [];
  const activity = probe.cache ? [...probe.cache.activity.values()] : [];
  const workers = probe.workerCounters().map((c, worker) => {
    const busy = c[STAT_BUSY_SEQ]! - 1;
    const phase: 'idle' | 'shards' | 'decode' = busy < 0 ? 'idle' : c[STAT_BUSY_PHASE] === BUSY_DECODE ? 'decode' : c[STAT_BUSY_PHASE] === BUSY_SHARDS ? 'shards' : 'idle';
    return { worker, seq: busy, phase, seconds: busy < 0 ? 0 : secs(now - c[STAT_BUSY_SINCE]!) };
  });
  const shards: StallShard[] = [];
  for (const index of probe.shardsOf(seq)) {
    const path = manifest.shards[index]?.path ?? `#${index}`;
    const waits: ShardWait[] = [];
    for (const r of inFlight) {
      if (r.path === path || r.path.endsWith(`/${path}`)) waits.push({ kind: 'storage', uri: r.path, what: r.what, attempt: r.attempt, hedge: r.hedge, seconds: secs(now - r.startedAt) });
    }
    for (const a of activity) {
      if (a.shard !== path) continue;
      if (a.phase === 'download') {
        waits.push({ kind: 'download', seconds: secs(now - a.since) });
        continue;
      }
      const owner = await readLockOwner(a.lockPath).catch(() => ({ pid: undefined, stale: false }));
      waits.push({ kind: 'cache-lock', lockPath: a.lockPath, pid: owner.pid, otherProcess: owner.pid !== undefined && owner.pid !== process.pid, seconds: secs(now - a.since) });
    }
    for (const k of workers) {
      if (k.seq === seq && k.phase !== 'idle') waits.push({ kind: 'decode', worker: k.worker, phase: k.phase, seconds: k.seconds });
    }
    shards.push({ index, path, waits });
  }
  const st = probe.stats();
  const queue = st.queue;
  const report: Omit<StallReport, 'text'> = {
    rank: probe.world.rank, localRank: probe.world.localRank, worldSize: probe.world.worldSize, dataset,
    seq, epoch, step, waiting: w !== undefined, waitedSeconds: w ? secs(now - w.since) : 0, shards, workers, queue, decodedBatches: st.batches,
  };
  return { ...report, text: formatReport(report, probe.uri, kind) };
}

function describeWait(x: ShardWait): string {
  switch (x.kind) {
    case 'storage':
      return `storage request ${x.what} ${x.uri} outstanding for ${x.seconds} s (attempt ${x.attempt}${x.hedge ? ', hedge' : ''})`;
    case 'cache-lock':
      return `cache lock ${x.lockPath} held by ${x.otherProcess ? 'another process' : 'this process'}, pid ${x.pid ?? '?'}, waited ${x.seconds} s`;
    case 'download':
      return `download into the cache running for ${x.seconds} s`;
    case 'decode':
      return `decode worker ${x.worker} busy for ${x.seconds} s on it (${x.phase === 'shards' ? 'waiting for its shards' : 'reading and decoding'})`;
  }
}

function formatReport(r: Omit<StallReport, 'text'>, uri: string, kind: 'stall' | 'diagnose'): string {
  const who = `rank ${r.rank} (local rank ${r.localRank}, world size ${r.worldSize}) epoch ${r.epoch} step ${r.step}`;
  const head = kind === 'stall'
    ? `GPUFEED_STALL ${who}: waited ${r.waitedSeconds} s for this batch of ${uri}`
    : `gpufeed diagnose: ${who}: ${r.waiting ? `the consumer has waited ${r.waitedSeconds} s for this batch` : 'the consumer is not waiting; its next batch'} of ${uri}`;
  const lines = [head];
  for (const s of r.shards) {
    lines.push(`  shard ${s.index} ${s.path}: ${s.waits.length ? s.waits.map(describeWait).join('; ') : 'nothing outstanding (ready, or not asked for yet)'}`);
  }
  const claimed = r.workers.some((k) => k.seq === r.seq);
  if (!claimed) lines.push(`  no decode worker has taken this batch yet${r.decodedBatches === 0 ? ' (none has finished a batch: the decode threads may still be starting)' : ''}`);
  const q = r.queue;
  lines.push(`  slots: ${q.queued} ready, ${q.filling} filling, ${q.freeSlots} free, ${q.held} held by the consumer, of ${q.slots}`);
  lines.push(`  workers: ${r.workers.map((k) => (k.seq < 0 ? `${k.worker} idle` : `${k.worker} on step +${k.seq - r.seq} ${k.phase === 'shards' ? 'waiting for shards' : 'decoding'} ${k.seconds} s`)).join(', ')}`);
  return lines.join('\n');
}

/**
 * Watches the consumer's waits: armed when a wait starts, disarmed when it ends, so it costs a
 * timer per wait that blocks (never per batch that is already there).
 */
export class StallWatch {
  stalls = 0;
  #timer: NodeJS.Timeout | undefined;
  #stalled = false;
  #closed = false;

  constructor(
    readonly probe: LoaderProbe,
    readonly dataset: string,
    readonly timeoutMs: number,
    readonly action: StallAction,
    readonly write: (text: string) => void = (t) => process.stderr.write(`${t}\n`),
  ) {}

  get stalled(): boolean {
    return this.#stalled;
  }

  waitStarted(): void {
    if (this.timeoutMs <= 0 || this.#closed) return;
    this.#arm();
  }

  waitEnded(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stalled = false;
  }

  close(): void {
    this.#closed = true;
    this.waitEnded();
  }

  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#fire(), this.timeoutMs);
    this.#timer.unref();
  }

  async #fire(): Promise<void> {
    this.#timer = undefined;
    if (this.#closed || this.probe.waiting() === undefined) return;
    let report: StallReport | undefined;
    let text: string;
    try {
      report = await diagnose(this.probe, this.dataset, 'stall');
      text = report.text;
    } catch (err) {
      text = `GPUFEED_STALL rank ${this.probe.world.rank}: the consumer waits past stallTimeout; the report failed: ${(err as Error).message}`;
    }
    if (this.#closed || this.probe.waiting() === undefined) return;
    this.#stalled = true;
    this.stalls += 1;
    this.write(this.action === 'fail' ? `${text}\n  stallAction fail: ending the run with GPUFEED_STALL` : text);
    if (this.action === 'fail') {
      // The report went to stderr above; the error says where, and carries it in its details.
      const where = report ? `rank ${report.rank} epoch ${report.epoch} step ${report.step} waited ${report.waitedSeconds} s` : `rank ${this.probe.world.rank} waited`;
      const shards = report?.shards.filter((x) => x.waits.some((y) => y.kind !== 'decode')).map((x) => x.path) ?? [];
      this.probe.fail(new GpufeedError(ErrorCodes.STALL, `${where} for its next batch of ${this.probe.uri} (stallTimeout ${this.timeoutMs / 1000} s)` +
        `${shards.length ? `, waiting on ${shards.join(', ')}` : ''}; the stall report is on stderr`, report ? {
        rank: report.rank, epoch: report.epoch, step: report.step, waitedSeconds: report.waitedSeconds, shards: report.shards.map((x) => x.path), report: text,
      } : { report: text }));
      return;
    }
    this.#arm();
  }
}
