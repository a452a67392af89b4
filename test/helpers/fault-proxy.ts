// A fault-injecting HTTP proxy on loopback, in front of the test S3 server. Tests control it:
// latency before each response, and faults on chosen requests (a queue, a probability, or both):
//   slowdown  503 SlowDown before anything is forwarded
//   reset     headers and half the body, then a TCP reset
//   truncate  headers (full Content-Length) and half the body, then a clean close
//   stall     headers and half the body, then nothing until `stallMs` passes (then reset)
// Headers pass through unchanged (Host included), so SigV4 signatures still verify upstream.
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { mulberry32 } from './seeded-random.js';

export type FaultKind = 'slowdown' | 'reset' | 'truncate' | 'stall';

export interface FaultPolicy {
  /** Added before each response is forwarded, ms. */
  latencyMs?: number;
  /** Chance in [0, 1] that a matching request gets a fault drawn from `faults`. */
  probability?: number;
  /** Kinds drawn from when `probability` fires. Default all four. */
  faults?: FaultKind[];
  /** How long a stalled body stays stalled before the proxy resets it, ms. Default 30000. */
  stallMs?: number;
  /** Which requests may be faulted. Default: GETs with a Range header (ranged reads). */
  match?: (req: IncomingMessage) => boolean;
  /** Seed of the fault draw, for repeatable runs. */
  seed?: number;
}

export interface FaultProxyStats {
  requests: number;
  gets: number;
  faults: Record<FaultKind, number>;
  /** Body bytes forwarded downstream per request path (bucket/key). */
  bytesByPath: Map<string, number>;
  /** GET requests per request path. */
  getsByPath: Map<string, number>;
}

export interface FaultProxy {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  port: number;
  stats: FaultProxyStats;
  setPolicy(policy: FaultPolicy): void;
  /** Faults for the next matching requests, in order (before any probabilistic ones). */
  enqueue(...faults: FaultKind[]): void;
  resetStats(): void;
  close(): Promise<void>;
}

const defaultMatch = (req: IncomingMessage): boolean => req.method === 'GET' && typeof req.headers.range === 'string';

export async function startFaultProxy(upstream: string, policy: FaultPolicy = {}): Promise<FaultProxy> {
  const target = new URL(upstream);
  let current: FaultPolicy = policy;
  let rng = mulberry32(policy.seed ?? 1);
  const queue: FaultKind[] = [];
  const sockets = new Set<Socket>();
  const upstreams = new Set<import('node:http').ClientRequest>();
  const timers = new Set<NodeJS.Timeout>();
  const newStats = (): FaultProxyStats => ({
    requests: 0, gets: 0, faults: { slowdown: 0, reset: 0, truncate: 0, stall: 0 }, bytesByPath: new Map(), getsByPath: new Map(),
  });
  let stats = newStats();

  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const pickFault = (req: IncomingMessage): FaultKind | undefined => {
    if (!(current.match ?? defaultMatch)(req)) return undefined;
    if (queue.length > 0) return queue.shift();
    const p = current.probability ?? 0;
    if (p > 0 && rng() < p) {
      const kinds = current.faults ?? ['slowdown', 'reset', 'truncate', 'stall'];
      return kinds[Math.floor(rng() * kinds.length)];
    }
    return undefined;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    stats.requests++;
    const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/').replace(/^\//, '');
    if (req.method === 'GET') {
      stats.gets++;
      stats.getsByPath.set(path, (stats.getsByPath.get(path) ?? 0) + 1);
    }
    const fault = pickFault(req);
    if (fault) stats.faults[fault]++;
    const forward = (): void => {
      if (fault === 'slowdown') {
        req.resume();
        const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';
        res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      const up = httpRequest(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          res.flushHeaders();
          const length = Number(upRes.headers['content-length'] ?? 0);
          const cutAt = fault ? Math.floor(length / 2) : Infinity;
          let sent = 0;
          const count = (n: number): void => {
            stats.bytesByPath.set(path, (stats.bytesByPath.get(path) ?? 0) + n);
          };
          const cut = (): void => {
            upRes.destroy();
            const sock = res.socket;
            if (fault === 'reset') sock?.resetAndDestroy();
            else if (fault === 'truncate') sock?.end();
            else if (fault === 'stall') later(current.stallMs ?? 30_000, () => sock?.resetAndDestroy());
          };
          if (fault && cutAt === 0) {
            res.flushHeaders();
            cut();
            return;
          }
          upRes.on('data', (chunk: Buffer) => {
            if (sent >= cutAt) return;
            const room = cutAt - sent;
            const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
            sent += part.length;
            count(part.length);
            res.write(part);
            if (sent >= cutAt) cut();
          });
          upRes.on('end', () => {
            if (sent < cutAt) res.end();
          });
          upRes.on('error', () => res.destroy());
        },
      );
      up.on('error', () => res.destroy());
      upstreams.add(up);
      up.on('close', () => upstreams.delete(up));
      // A client that went away (killed, timed out) takes its upstream request with it.
      res.on('close', () => up.destroy());
      req.pipe(up);
    };
    const latency = current.latencyMs ?? 0;
    if (latency > 0) later(latency, () => (res.destroyed ? undefined : forward()));
    else forward();
  };

  const server: Server = createServer(handle);
  server.keepAliveTimeout = 5_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    get stats() {
      return stats;
    },
    setPolicy(p) {
      current = p;
      rng = mulberry32(p.seed ?? 1);
    },
    enqueue(...faults) {
      queue.push(...faults);
    },
    resetStats() {
      stats = newStats();
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      for (const u of upstreams) u.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

