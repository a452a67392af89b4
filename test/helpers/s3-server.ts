// An in-process S3-compatible server (s3rver) on loopback, in a temp dir, for tests and benches.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { S3Client, PutObjectCommand } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ManifestV1, ShardEntry } from '../../src/dataset/types.js';
import type { ShardSource } from '../../src/pipeline/shard-source.js';

const require = createRequire(import.meta.url);

/** s3rver's built-in account: it checks signatures against these. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface TestS3Server {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  port: number;
  /** A client on this server (checksums only when required, as s3rver needs). */
  client: S3Client;
  putObject(bucket: string, key: string, body: Uint8Array | string): Promise<void>;
  close(): Promise<void>;
}

interface S3rverInstance {
  run(): Promise<{ port: number; address: string }>;
  close(): Promise<void>;
  httpServer?: import('node:http').Server;
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance;

/** Starts s3rver with `buckets` created. Set the AWS_* credentials env or pass S3RVER_CREDENTIALS. */
export async function startS3Server(buckets: string[] = ['test']): Promise<TestS3Server> {
  const dir = await mkdtemp(join(tmpdir(), 'gpufeed-s3rver-'));
  const S3rver = require('s3rver') as S3rverCtor;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    vhostBuckets: false,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  const addr = await server.run();
  const endpoint = `http://127.0.0.1:${addr.port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    endpoint,
    port: addr.port,
    client,
    async putObject(bucket, key, body) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    async close() {
      client.destroy();
      const closing = server.close().catch(() => {});
      // Connections a test left open (a killed child's, a stalled proxy's) must not hold close up.
      server.httpServer?.closeAllConnections();
      await closing;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---- Dataset fixtures on the test server ----


export interface TestDataset {
  manifest: ManifestV1;
  /** Shard bytes by shard path. */
  data: Map<string, Buffer>;
}

/** `count` shards of random bytes (sizes vary by `step`) under bucket/prefix, plus index.json. */
export async function uploadDataset(server: TestS3Server, bucket: string, prefix: string, count: number, bytes: number, step = 1024): Promise<TestDataset> {
  const data = new Map<string, Buffer>();
  const shards: ShardEntry[] = [];
  for (let i = 0; i < count; i++) {
    const path = `shards/shard-${String(i).padStart(5, '0')}.arrow`;
    const d = randomBytes(bytes + i * step);
    data.set(path, d);
    shards.push({ path, format: 'arrow', rows: 1, bytes: d.length, hash: `sha256:${createHash('sha256').update(d).digest('hex')}`, layout: { kind: 'arrow', batches: [] } });
  }
  await Promise.all(shards.map((s) => server.putObject(bucket, `${prefix}/${s.path}`, data.get(s.path)!)));
  const manifest: ManifestV1 = {
    format: 'gpufeed-dataset', version: 1, schema: [], shards, rows: count, bytes: shards.reduce((a, s) => a + s.bytes, 0),
  };
  await server.putObject(bucket, `${prefix}/index.json`, JSON.stringify(manifest));
  return { manifest, data };
}

/**
 * Reads shards in `order` through `source` the way a rank would (hint ahead, acquire, read, release)
 * and checks each against the manifest hash. Returns the shard paths whose bytes were wrong.
 */
export async function readShardsThrough(source: ShardSource, manifest: ManifestV1, order: number[], holdMs = 0): Promise<string[]> {
  const bad: string[] = [];
  source.hint(order);
  for (let pos = 0; pos < order.length; pos++) {
    const index = order[pos]!;
    const shard = manifest.shards[index]!;
    const lease = await source.acquire(index);
    try {
      const bytes = await readFile(lease.path);
      if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` !== shard.hash) bad.push(shard.path);
      if (holdMs > 0) await new Promise((r) => setTimeout(r, holdMs));
    } finally {
      lease.release();
    }
    source.hint(order.slice(pos + 1));
  }
  return bad;
}
