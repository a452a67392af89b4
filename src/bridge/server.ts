// The server side of the bridge: drives one loader for one consumer process over one socket.
// Every batch handed to the consumer is retained here until the consumer releases it (by asking
// for the next one, or by seq after keeping it), so the ring is the only bound on memory: a consumer
// that holds batches stalls decoding, it never makes anything grow. When the socket ends (the
// consumer closed it, exited, or was killed) the loader is closed and `done` resolves.
import type { Duplex } from 'node:stream';
import { ErrorCodes, GpufeedError, serializeError } from '../errors.js';
import type { ColumnSpec } from '../dataset/types.js';
import type { BatchLayout } from '../pipeline/batch-layout.js';
import { isVarColumn, type ColumnData } from '../pipeline/batch.js';
import type { SlabInfo } from '../memory/index.js';
import type { ResumeState, World } from '../plan/index.js';
import { LineSplitter } from './framing.js';
import {
  MAX_CLIENT_LINE_BYTES, PROTOCOL_VERSION, encodeMessage, errorMessage, parseClientMessage,
  type BatchMessage, type ClientMessage, type HelloMessage, type ServerMessage,
} from './protocol.js';

/** What the server needs of a batch; pipeline/batch.ts's Batch has it. */
export interface BridgeBatch {
  readonly epoch: number;
  readonly step: number;
  readonly ids: readonly number[];
  readonly size: number;
  readonly stream?: Int32Array | undefined;
  readonly slabId: number;
  readonly columns: Record<string, ColumnData>;
  retain(): unknown;
  release(): void;
}

/** What the server needs of a loader; pipeline/loader.ts's Loader has it. */
export interface BridgeLoader {
  readonly layout: BatchLayout;
  readonly world: World;
  readonly columns: readonly ColumnSpec[];
  readonly order: { readonly batchSize: number; readonly epochs: number };
  readonly ring: { readonly slots: readonly { readonly slab: SlabInfo }[] };
  stepsPerEpoch(epoch?: number): number;
  state(): ResumeState;
  close(): Promise<void>;
  [Symbol.asyncIterator](): AsyncIterator<BridgeBatch>;
}

export interface BridgeServerOptions {
  /** Client messages queued behind the one being handled; more is a protocol error. Default 1024. */
  maxPending?: number;
  /** How long closing waits for the loader to stop (in-flight decodes) before giving up. Default 5 s. */
  closeTimeoutMs?: number;
}

/** Why the server stopped: the client asked, the client went away, or something failed. */
export type CloseReason = 'close' | 'eof' | 'error';

export interface BridgeOutcome {
  reason: CloseReason;
  /** What failed, when reason is 'error' and the failure was ours (startup, protocol) to report. */
  error?: unknown;
}

export class BridgeServer {
  /** Resolves once the server stopped and its loader is closed (or given up on after closeTimeoutMs). */
  readonly done: Promise<BridgeOutcome>;
  readonly #socket: Duplex;
  readonly #open: () => Promise<BridgeLoader>;
  readonly #maxPending: number;
  readonly #closeTimeoutMs: number;
  readonly #splitter = new LineSplitter(MAX_CLIENT_LINE_BYTES);
  #resolveDone!: (r: BridgeOutcome) => void;
  #loader: BridgeLoader | undefined;
  #error: unknown;
  #iterator: AsyncIterator<BridgeBatch> | undefined;
  #queue: ClientMessage[] = [];
  #draining = false;
  #closing: Promise<void> | undefined;
  #seq = 0;
  /** Batches handed out and not yet released, by seq. */
  readonly #held = new Map<number, BridgeBatch>();
  /** The batch delivered last, released by the next `next` unless that one says keep. */
  #current: number | undefined;
  /** The last delivered batch closed its epoch: the next `next` answers `end`. */
  #epochEnd: { epoch: number; final: boolean } | undefined;
  /** The iterator is exhausted (or failed): every `next` answers `end` (final). */
  #finished = false;
  #lastEpoch = 0;

  /**
   * `open` makes the loader; it runs in start(), after the socket is watched, so a client that goes
   * away during a slow open (S3) still stops the server, and an open that fails reaches the client
   * as an `error` message instead of a silent exit.
   */
  constructor(socket: Duplex, open: BridgeLoader | (() => Promise<BridgeLoader>), options: BridgeServerOptions = {}) {
    this.#socket = socket;
    this.#open = typeof open === 'function' ? open : () => Promise.resolve(open);
    this.#maxPending = options.maxPending ?? 1024;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
  }

  /** Batches the consumer holds now (delivered, not released). */
  get heldCount(): number {
    return this.#held.size;
  }

  /** Watches the socket, opens the loader, sends hello and starts answering. */
  start(): void {
    const s = this.#socket;
    s.on('data', (chunk: Buffer) => this.#onData(chunk));
    s.on('end', () => void this.close('eof'));
    s.on('close', () => void this.close('eof'));
    s.on('error', () => void this.close('eof'));
    this.#open().then(
      (loader) => {
        if (this.#closing) {
          // The client left while we were opening: nobody will use it.
          void loader.close().catch(() => {});
          return;
        }
        this.#loader = loader;
        this.#lastEpoch = loader.state().epoch;
        this.#send(this.#hello(loader));
        if (!this.#draining) void this.#drain();
      },
      (err: unknown) => this.#fail(err),
    );
  }

  #hello(l: BridgeLoader): HelloMessage {
    const state = l.state();
    return {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      pid: process.pid,
      world: l.world,
      batchSize: l.order.batchSize,
      epochs: Number.isFinite(l.order.epochs) ? l.order.epochs : null,
      stepsPerEpoch: l.stepsPerEpoch(state.epoch),
      state,
      columns: [...l.columns],
      layout: l.layout,
      slabs: l.ring.slots.map(({ slab }) => ({ id: slab.id, fd: slab.fd, bytes: slab.bytes, kind: slab.kind, pinned: slab.pinned })),
    };
  }

  #send(m: ServerMessage): void {
    if (this.#closing || this.#socket.destroyed || !this.#socket.writable) return;
    this.#socket.write(encodeMessage(m));
  }

  #onData(chunk: Buffer): void {
    if (this.#closing) return;
    try {
      for (const line of this.#splitter.push(chunk)) {
        if (this.#queue.length >= this.#maxPending) {
          throw new GpufeedError(ErrorCodes.PROTOCOL, `bridge protocol: more than ${this.#maxPending} messages waiting; the client must wait for replies`, { limit: this.#maxPending });
        }
        this.#queue.push(parseClientMessage(line));
      }
    } catch (err) {
      this.#fail(err);
      return;
    }
    if (this.#loader && !this.#draining) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      // Bounded by the queue, which #onData bounds.
      while (!this.#closing) {
        const m = this.#queue.shift();
        if (!m) break;
        await this.#handle(m);
      }
    } catch (err) {
      this.#fail(err);
    } finally {
      this.#draining = false;
    }
  }

  async #handle(m: ClientMessage): Promise<void> {
    const loader = this.#loader;
    if (!loader) throw new GpufeedError(ErrorCodes.INTERNAL, 'bridge: a message was handled before the loader opened');
    switch (m.type) {
      case 'next':
        return this.#next(loader, m.keep === true);
      case 'release':
        this.#release(m.seq);
        return;
      case 'state':
        this.#send({ type: 'state', state: loader.state() });
        return;
      case 'close':
        void this.close('close');
        return;
    }
  }

  #release(seq: number): void {
    // Unknown seqs (already released) are harmless: releasing is idempotent on both sides.
    const b = this.#held.get(seq);
    if (!b) return;
    this.#held.delete(seq);
    if (this.#current === seq) this.#current = undefined;
    b.release();
  }

  async #next(loader: BridgeLoader, keep: boolean): Promise<void> {
    if (this.#current !== undefined) {
      if (!keep) this.#release(this.#current);
      this.#current = undefined;
    }
    if (this.#epochEnd) {
      const end = this.#epochEnd;
      this.#epochEnd = undefined;
      if (end.final) this.#finished = true;
      this.#send({ type: 'end', epoch: end.epoch, final: end.final });
      return;
    }
    if (this.#finished) {
      this.#send({ type: 'end', epoch: this.#lastEpoch, final: true });
      return;
    }
    this.#iterator ??= loader[Symbol.asyncIterator]();
    let r: IteratorResult<BridgeBatch>;
    try {
      r = await this.#iterator.next();
    } catch (err) {
      // The loader's iterator is finished once it throws; the client decides what to do next.
      this.#finished = true;
      this.#send(errorMessage(serializeError(err), true));
      return;
    }
    if (r.done) {
      this.#finished = true;
      this.#send({ type: 'end', epoch: this.#lastEpoch, final: true });
      return;
    }
    const b = r.value;
    if (this.#closing) return;
    if (!loader.ring.slots.some(({ slab }) => slab.id === b.slabId)) {
      // An oversize batch in a one-off slot (memory-budget.ts): the client maps only the slabs of
      // the hello. Refused by name rather than described wrongly.
      b.release();
      this.#finished = true;
      const err = new GpufeedError(ErrorCodes.INVALID_OPTION, `batch at epoch ${b.epoch} step ${b.step} needs more room for its variable-length rows than a batch slot has (${loader.layout.slotBytes} bytes), and the bridge carries only slot batches; raise memoryBytes (memory_bytes) so that slots hold the largest rows`, { option: 'memoryBytes' });
      this.#send(errorMessage(serializeError(err), true));
      return;
    }
    b.retain();
    const seq = ++this.#seq;
    this.#held.set(seq, b);
    this.#current = seq;
    this.#lastEpoch = b.epoch;
    this.#send(this.#batchMessage(loader, seq, b));
    if (b.step + 1 >= loader.stepsPerEpoch(b.epoch)) {
      this.#epochEnd = { epoch: b.epoch, final: b.epoch + 1 >= loader.order.epochs };
    }
  }

  #batchMessage(loader: BridgeLoader, seq: number, b: BridgeBatch): BatchMessage {
    const used: Record<string, number> = {};
    for (const region of loader.layout.columns) {
      if (region.offsetsOffset < 0) continue;
      const col = b.columns[region.name];
      if (col && isVarColumn(col)) used[region.name] = col.offsets[b.size] ?? 0;
    }
    const msg: BatchMessage = { type: 'batch', seq, slab: b.slabId, epoch: b.epoch, step: b.step, rows: b.size, ids: [...b.ids], used };
    if (b.stream) msg.stream = [...b.stream];
    return msg;
  }

  #fail(err: unknown): void {
    if (this.#closing) return;
    this.#error = err;
    this.#send(errorMessage(serializeError(err), true));
    void this.close('error');
  }

  /** Stops serving: closes the loader (waiting at most closeTimeoutMs) and ends the socket. */
  close(reason: CloseReason): Promise<void> {
    if (this.#closing) return this.#closing;
    // Set before anything else: #send stays quiet from here on, except what was already written.
    const closing = (async () => {
      this.#queue = [];
      this.#held.clear();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#closeTimeoutMs);
      });
      try {
        // Without a loader yet, start()'s open closes it when it arrives.
        if (this.#loader) await Promise.race([this.#loader.close().catch(() => {}), timeout]);
      } finally {
        clearTimeout(timer);
      }
      if (!this.#socket.destroyed) this.#socket.end();
      this.#resolveDone(this.#error === undefined ? { reason } : { reason, error: this.#error });
    })();
    this.#closing = closing;
    return closing;
  }
}
