// The bridge: the server's protocol against a fake loader over an in-memory duplex (every reply,
// keep/release accounting, epoch ends, errors, EOF), then `gpufeed serve` end to end over a real
// socketpair (a child's extra stdio pipe is one), on a prep'd dataset.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough, type Readable, type Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { BridgeServer, type BridgeBatch, type BridgeLoader, type BridgeOutcome } from '../../src/bridge/server.js';
import { LineSplitter } from '../../src/bridge/framing.js';
import { PROTOCOL_VERSION, type ServerMessage } from '../../src/bridge/protocol.js';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';
import { prepDataset } from '../../src/dataset/index.js';
import type { ResumeState } from '../../src/plan/index.js';
import { cliArgv } from '../helpers/cli-command.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Reads newline-delimited JSON from a stream, one message per call, with a deadline. */
class Reader {
  #splitter = new LineSplitter(64 << 20);
  #lines: string[] = [];
  #waiters: ((l: string | undefined) => void)[] = [];
  #ended = false;

  constructor(stream: Readable) {
    stream.on('data', (c: Buffer) => {
      for (const l of this.#splitter.push(c)) {
        const w = this.#waiters.shift();
        if (w) w(l);
        else this.#lines.push(l);
      }
    });
    stream.on('end', () => this.#end());
    stream.on('close', () => this.#end());
  }

  #end(): void {
    this.#ended = true;
    for (const w of this.#waiters.splice(0)) w(undefined);
  }

  async next(timeoutMs = 10_000): Promise<ServerMessage | undefined> {
    const l = this.#lines.shift();
    if (l !== undefined) return JSON.parse(l) as ServerMessage;
    if (this.#ended) return undefined;
    const line = await new Promise<string | undefined>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no message within the deadline')), timeoutMs);
      this.#waiters.push((v) => {
        clearTimeout(t);
        resolve(v);
      });
    });
    return line === undefined ? undefined : (JSON.parse(line) as ServerMessage);
  }
}

function fakeState(epoch: number, stepsDone: number): ResumeState {
  return { epoch, stepsDone } as unknown as ResumeState;
}

/** Two epochs of three steps of two rows; a `text` column with known used lengths. */
class FakeLoader implements BridgeLoader {
  readonly layout = {
    batchSize: 2,
    slotBytes: 256,
    columns: [{ name: 'text', kind: 'bytes' as const, dtype: 'string' as const, shape: [], elementBytes: 1, rowBytes: 0, valuesOffset: 64, valuesBytes: 64, offsetsOffset: 0, validOffset: -1 }],
  };
  readonly world = { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1 };
  readonly columns = [{ name: 'text', dtype: 'string' as const, kind: 'bytes' as const, nullable: false }];
  readonly order = { batchSize: 2, epochs: 2 };
  readonly ring = { slots: [1, 2, 3].map((id) => ({ slab: { id, fd: 20 + id, bytes: 4096, pid: process.pid, kind: 'pageable' as const, pinned: false } })) };
  released: string[] = [];
  closed = false;
  delivered = { epoch: 0, step: 0 };
  failAt: number | undefined;

  stepsPerEpoch(): number {
    return 3;
  }

  state(): ResumeState {
    return fakeState(this.delivered.epoch, this.delivered.step);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<BridgeBatch> {
    let n = 0;
    for (let epoch = 0; epoch < 2; epoch++) {
      for (let step = 0; step < 3; step++) {
        if (this.failAt === n++) throw new GpufeedError(ErrorCodes.SHARD_MISSING, 'shard gone', { shard: 's/3.arrow' });
        const name = `${epoch}:${step}`;
        this.delivered = step + 1 === 3 ? { epoch: epoch + 1, step: 0 } : { epoch, step: step + 1 };
        yield {
          epoch, step, ids: [step * 2, step * 2 + 1], size: 2, slabId: 1 + (step % 3),
          columns: { text: { offsets: Int32Array.from([0, 3, 3 + step]), values: new Uint8Array(3 + step) } },
          retain: () => {},
          release: () => this.released.push(name),
        };
      }
    }
  }
}

function pair(): { server: Duplex; client: { input: Writable; output: Readable } } {
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  return { server: Duplex.from({ readable: toServer, writable: toClient }), client: { input: toServer, output: toClient } };
}

function send(w: Writable, m: unknown): void {
  w.write(`${typeof m === 'string' ? m : JSON.stringify(m)}\n`);
}

describe('BridgeServer protocol', () => {
  it('hello, batches, keep and release, epoch ends, state', async (t) => {
    const loader = new FakeLoader();
    const { server: sock, client } = pair();
    const server = new BridgeServer(sock, loader);
    server.start();
    const r = new Reader(client.output);
    t.after(() => void server.close('close'));

    const hello = await r.next();
    assert.ok(hello?.type === 'hello');
    assert.equal(hello.protocol, PROTOCOL_VERSION);
    assert.equal(hello.pid, process.pid);
    assert.equal(hello.epochs, 2);
    assert.equal(hello.stepsPerEpoch, 3);
    assert.deepEqual(hello.slabs.map((s) => [s.id, s.fd, s.bytes]), [[1, 21, 4096], [2, 22, 4096], [3, 23, 4096]]);
    assert.equal(hello.layout.columns[0]?.name, 'text');

    send(client.input, { type: 'next' });
    const b1 = await r.next();
    assert.deepEqual(b1, { type: 'batch', seq: 1, slab: 1, epoch: 0, step: 0, rows: 2, ids: [0, 1], used: { text: 3 } });
    send(client.input, { type: 'next' });
    const b2 = await r.next();
    assert.ok(b2?.type === 'batch' && b2.seq === 2 && b2.used.text === 4);
    assert.deepEqual(loader.released, ['0:0'], 'asking for the next batch releases the previous one');
    send(client.input, { type: 'next', keep: true });
    const b3 = await r.next();
    assert.ok(b3?.type === 'batch' && b3.step === 2);
    assert.deepEqual(loader.released, ['0:0'], 'keep: the previous batch stays held');
    assert.equal(server.heldCount, 2);
    send(client.input, { type: 'next' });
    assert.deepEqual(await r.next(), { type: 'end', epoch: 0, final: false });
    assert.deepEqual(loader.released, ['0:0', '0:2']);
    send(client.input, { type: 'release', seq: 2 });
    send(client.input, { type: 'release', seq: 2 }); // idempotent
    send(client.input, { type: 'release', seq: 99 }); // unknown: ignored
    send(client.input, { type: 'state' });
    assert.deepEqual(await r.next(), { type: 'state', state: fakeState(1, 0) });
    assert.deepEqual(loader.released, ['0:0', '0:2', '0:1']);
    assert.equal(server.heldCount, 0);

    const epoch1: number[] = [];
    for (let i = 0; i < 3; i++) {
      send(client.input, { type: 'next' });
      const m = await r.next();
      assert.ok(m?.type === 'batch' && m.epoch === 1);
      epoch1.push(m.step);
    }
    assert.deepEqual(epoch1, [0, 1, 2]);
    send(client.input, { type: 'next' });
    assert.deepEqual(await r.next(), { type: 'end', epoch: 1, final: true });
    send(client.input, { type: 'next' });
    assert.deepEqual(await r.next(), { type: 'end', epoch: 1, final: true }, 'after the final end, end again');
    assert.equal(server.heldCount, 0);

    send(client.input, { type: 'close' });
    const outcome = await server.done;
    assert.deepEqual(outcome, { reason: 'close' });
    assert.ok(loader.closed);
  });

  it('a loader error reaches the client with its code and ends the stream', async () => {
    const loader = new FakeLoader();
    loader.failAt = 1;
    const { server: sock, client } = pair();
    const server = new BridgeServer(sock, loader);
    server.start();
    const r = new Reader(client.output);
    await r.next();
    send(client.input, { type: 'next' });
    assert.equal((await r.next())?.type, 'batch');
    send(client.input, { type: 'next' });
    const err = await r.next();
    assert.ok(err?.type === 'error');
    assert.equal(err.code, ErrorCodes.SHARD_MISSING);
    assert.equal(err.fatal, true);
    assert.deepEqual(err.details, { shard: 's/3.arrow' });
    send(client.input, { type: 'state' });
    assert.deepEqual(await r.next(), { type: 'state', state: fakeState(0, 1) }, 'state still answers after a failure');
    send(client.input, { type: 'next' });
    assert.deepEqual(await r.next(), { type: 'end', epoch: 0, final: true });
    client.input.end();
    assert.equal((await server.done).reason, 'eof');
    assert.ok(loader.closed);
  });

  it('a malformed message is a fatal protocol error', async () => {
    const loader = new FakeLoader();
    const { server: sock, client } = pair();
    const server = new BridgeServer(sock, loader);
    server.start();
    const r = new Reader(client.output);
    await r.next();
    send(client.input, 'not json');
    const err = await r.next();
    assert.ok(err?.type === 'error' && err.code === ErrorCodes.PROTOCOL && err.fatal);
    const outcome: BridgeOutcome = await server.done;
    assert.equal(outcome.reason, 'error');
    assert.ok(outcome.error instanceof GpufeedError);
    assert.ok(loader.closed);
    assert.equal(await r.next(), undefined, 'the server ends the connection');
  });

  it('an open that fails is reported on the socket; a client gone during open closes the loader', async () => {
    const { server: sock, client } = pair();
    const server = new BridgeServer(sock, () => Promise.reject(new GpufeedError(ErrorCodes.MANIFEST_NOT_FOUND, 'no index.json at /x', { path: '/x' })));
    server.start();
    const r = new Reader(client.output);
    const err = await r.next();
    assert.ok(err?.type === 'error' && err.code === ErrorCodes.MANIFEST_NOT_FOUND && err.message === 'no index.json at /x');
    const outcome = await server.done;
    assert.equal(outcome.reason, 'error');
    assert.equal((outcome.error as GpufeedError).code, ErrorCodes.MANIFEST_NOT_FOUND);

    const late = new FakeLoader();
    let open!: (l: BridgeLoader) => void;
    const p2 = pair();
    const s2 = new BridgeServer(p2.server, () => new Promise<BridgeLoader>((resolve) => (open = resolve)));
    s2.start();
    p2.client.input.end();
    assert.equal((await s2.done).reason, 'eof');
    open(late);
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(late.closed, 'a loader that arrives after the client left is closed');
  });
});

describe('gpufeed serve over a socketpair', () => {
  const root = mkdtempSync(join(tmpdir(), 'gpufeed-bridge-'));
  const ds = join(root, 'ds');
  const children: ChildProcess[] = [];

  before(async () => {
    const input = join(root, 'rows.jsonl');
    writeFileSync(input, Array.from({ length: 50 }, (_, i) => JSON.stringify({ x: [i, i + 1, i + 2], s: `row ${i}` })).join('\n') + '\n');
    await prepDataset([input], { out: ds, format: 'arrow', shapes: { x: [3] }, types: { x: 'int32' }, shardSize: 400, workers: 0, progress: false });
  });
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  function serve(args: string[]): { child: ChildProcess; sock: Duplex; r: Reader; exited: Promise<number | null>; stderr: () => string } {
    // stdio[3] 'pipe' is a Unix socketpair end in the child (libuv): exactly what the Python client passes.
    const child = spawn(process.execPath, [...cliArgv(), 'serve', ...args, '--fd', '3'], {
      cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const sock = child.stdio[3] as Duplex;
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { child, sock, r: new Reader(sock), exited, stderr: () => err };
  }

  it('serves batches in plan order and exits when its socket ends', async () => {
    const { sock, r, exited } = serve([ds, '--batch-size', '8', '--workers', '1', '--epochs', '1', '--no-pin']);
    const hello = await r.next(30_000);
    assert.ok(hello?.type === 'hello', `got ${JSON.stringify(hello)}`);
    assert.equal(hello.slabs.length, 4, '2 x workers + 2 slots');
    for (const s of hello.slabs) assert.ok(existsSync(`/proc/${hello.pid}/fd/${s.fd}`), 'a slab is reachable through /proc');
    const ids: number[] = [];
    for (let i = 0; i < 10; i++) {
      sock.write('{"type":"next"}\n');
      const m = await r.next();
      if (m?.type === 'end') break;
      assert.ok(m?.type === 'batch', JSON.stringify(m));
      assert.ok(hello.slabs.some((s) => s.id === m.slab));
      assert.ok(m.used.s! > 0);
      ids.push(...m.ids);
    }
    assert.deepEqual(ids, Array.from({ length: 50 }, (_, i) => i));
    sock.end();
    assert.equal(await exited, 0);
    assert.deepEqual(readdirSync(root).sort(), ['ds', 'rows.jsonl'], 'no socket file');
  });

  it('reports startup errors on the socket, with their codes', async () => {
    const missing = serve([join(root, 'nope'), '--batch-size', '8']);
    const e1 = await missing.r.next(30_000);
    assert.ok(e1?.type === 'error' && e1.code === ErrorCodes.MANIFEST_NOT_FOUND, JSON.stringify(e1));
    assert.equal(await missing.exited, 2);
    assert.match(missing.stderr(), /GPUFEED_MANIFEST_NOT_FOUND/);

    const badFlag = serve([ds, '--batch-size', '8', '--shuffle', 'bogus']);
    const e2 = await badFlag.r.next(30_000);
    assert.ok(e2?.type === 'error' && e2.code === ErrorCodes.INVALID_OPTION && /shuffle/.test(e2.message), JSON.stringify(e2));
    assert.notEqual(await badFlag.exited, 0);

    const badRange = serve([ds, '--batch-size', '0']);
    const e3 = await badRange.r.next(30_000);
    assert.ok(e3?.type === 'error' && e3.code === ErrorCodes.INVALID_OPTION && /--batch-size/.test(e3.message), JSON.stringify(e3));
    assert.equal(await badRange.exited, 2);
  });

  it('exits when the client is killed mid-stream', async () => {
    const { sock, r, exited } = serve([ds, '--batch-size', '4', '--workers', '1', '--epochs', 'inf', '--no-pin']);
    await r.next(30_000);
    sock.write('{"type":"next"}\n');
    assert.equal((await r.next())?.type, 'batch');
    sock.destroy(); // what the kernel does to a killed client's end
    assert.equal(await exited, 0);
  });
});
