// The bridge protocol between `gpufeed serve` and a consumer in another process (the Python client).
// One connected Unix stream socket carries newline-delimited JSON control messages; batch bytes
// never travel on it: they stay in the loader's shared-memory slabs, which the consumer maps once
// (from /proc/<pid>/fd/<fd>) after `hello`. A batch message only names the slab and the rows.
//
// Flow: server sends `hello`; then the client drives. Each `next` gets exactly one reply (`batch`,
// `end` or `error`), each `state` gets `state`; `release` and `close` get none. One epoch is one
// run of `next` until `end`, so a client's `for batch in loader` is one epoch.
import { ErrorCodes, GpufeedError, type SerializedError } from '../errors.js';
import type { BatchLayout } from '../pipeline/batch-layout.js';
import type { ColumnSpec } from '../dataset/types.js';
import type { MemoryKind } from '../memory/index.js';
import type { ResumeState, World } from '../plan/index.js';

/** Bumped on any change a client must know about; the client refuses other versions. */
export const PROTOCOL_VERSION = 1;

/** Client messages are small; a longer line is a protocol error, not a reason to buffer more. */
export const MAX_CLIENT_LINE_BYTES = 1 << 20;

export interface SlabDesc {
  id: number;
  /** memfd descriptor in the server process: map `/proc/<pid>/fd/<fd>`, MAP_SHARED, `bytes` long. */
  fd: number;
  bytes: number;
  kind: MemoryKind;
  pinned: boolean;
}

export interface HelloMessage {
  type: 'hello';
  protocol: typeof PROTOCOL_VERSION;
  /** Server pid, for /proc/<pid>/fd/<fd>. */
  pid: number;
  world: World;
  batchSize: number;
  /** Epochs the stream runs; null for an endless stream. */
  epochs: number | null;
  /** Steps of the first epoch this stream delivers. */
  stepsPerEpoch: number;
  /** Where the stream starts (the resume state it was opened with, or epoch 0 step 0). */
  state: ResumeState;
  columns: ColumnSpec[];
  /** Where every column lives inside a slot; every slot is one whole slab, from offset 0. */
  layout: BatchLayout;
  slabs: SlabDesc[];
}

export interface BatchMessage {
  type: 'batch';
  /** Per stream, from 1; what `release` names. */
  seq: number;
  slab: number;
  epoch: number;
  step: number;
  rows: number;
  ids: number[];
  /** Mixtures: the stream (index of the dataset) of each row; absent for one dataset. */
  stream?: number[];
  /** Variable-length columns: elements used in the values region (offsets[rows]). */
  used: Record<string, number>;
}

export interface EndMessage {
  type: 'end';
  /** The epoch that just ended (the last one delivered, or the one the stream stopped in). */
  epoch: number;
  /** No epoch follows: every later `next` gets `end` again. */
  final: boolean;
}

export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
  details?: Record<string, unknown>;
  /** The stream cannot go on (the server is closing, or the batch iterator failed). */
  fatal: boolean;
}

export interface StateMessage {
  type: 'state';
  state: ResumeState;
}

export type ServerMessage = HelloMessage | BatchMessage | EndMessage | ErrorMessage | StateMessage;

export interface NextRequest {
  type: 'next';
  /** Keep the batch delivered last instead of releasing it; the client releases it later by seq. */
  keep?: boolean;
}
export interface ReleaseRequest {
  type: 'release';
  seq: number;
}
export interface StateRequest {
  type: 'state';
}
export interface CloseRequest {
  type: 'close';
}

export type ClientMessage = NextRequest | ReleaseRequest | StateRequest | CloseRequest;

function protocolError(message: string, details: Record<string, unknown> = {}): GpufeedError {
  return new GpufeedError(ErrorCodes.PROTOCOL, `bridge protocol: ${message}`, details);
}

/** Parses and validates one client line. Throws GPUFEED_PROTOCOL naming what is wrong. */
export function parseClientMessage(line: string): ClientMessage {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw protocolError(`a message is not JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw protocolError('a message must be a JSON object');
  const m = v as Record<string, unknown>;
  switch (m.type) {
    case 'next':
      if (m.keep !== undefined && typeof m.keep !== 'boolean') throw protocolError('next.keep must be a boolean', { field: 'keep' });
      return m.keep === true ? { type: 'next', keep: true } : { type: 'next' };
    case 'release':
      if (typeof m.seq !== 'number' || !Number.isSafeInteger(m.seq) || m.seq < 1) throw protocolError('release.seq must be a positive integer', { field: 'seq' });
      return { type: 'release', seq: m.seq };
    case 'state':
      return { type: 'state' };
    case 'close':
      return { type: 'close' };
    default:
      throw protocolError(`unknown message type ${JSON.stringify(m.type)}`, { field: 'type' });
  }
}

/** One line of the wire format. Infinity (an endless `epochs`) has no JSON form: callers pass null. */
export function encodeMessage(m: ServerMessage | ClientMessage): string {
  return `${JSON.stringify(m)}\n`;
}

export function errorMessage(err: SerializedError, fatal: boolean): ErrorMessage {
  const m: ErrorMessage = { type: 'error', code: err.code, message: err.message, fatal };
  if (err.details && Object.keys(err.details).length > 0) m.details = err.details;
  return m;
}
