// The Loader's metrics and stall options, validated once (messages name the option).
import { invalidOption } from '../errors.js';

export type StallAction = 'warn' | 'fail';

export interface MetricsOptions {
  /**
   * Serve Prometheus metrics on this port (0: a free port, reported on stderr and by
   * loader.metricsAddress()). Default: no endpoint (loader.metrics() still reads them).
   */
  metricsPort?: number;
  /** Address the endpoint binds. Default 127.0.0.1 (this machine only). */
  metricsHost?: string;
  /** The `dataset` label of every metric. Default: the last part of the dataset URI. */
  metricsDataset?: string;
  /** Seconds the consumer may wait for one batch before a GPUFEED_STALL report; 0: never. Default 60. */
  stallTimeout?: number;
  /** After a stall report: 'warn' (report again every stallTimeout) or 'fail' (the wait throws GPUFEED_STALL). Default 'warn'. */
  stallAction?: StallAction;
}

export interface ResolvedMetricsOptions {
  port: number | undefined;
  host: string;
  dataset: string;
  stallTimeoutMs: number;
  stallAction: StallAction;
}

export const DEFAULT_STALL_TIMEOUT_S = 60;

/** `s3://bucket/a/b/` -> b; `/data/ds` -> ds. */
export function datasetName(uri: string): string {
  const parts = uri.replace(/[?#].*$/, '').split('/').filter(Boolean);
  return parts[parts.length - 1] ?? uri;
}

export function resolveMetricsOptions(o: MetricsOptions, uri: string): ResolvedMetricsOptions {
  const port = o.metricsPort;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw invalidOption('metricsPort', `must be an integer from 0 (a free port) to 65535, got ${String(port)}`);
  }
  if (o.metricsHost !== undefined && (typeof o.metricsHost !== 'string' || o.metricsHost.length === 0)) throw invalidOption('metricsHost', 'must be a host name or address');
  if (o.metricsDataset !== undefined && (typeof o.metricsDataset !== 'string' || o.metricsDataset.length === 0)) throw invalidOption('metricsDataset', 'must be a non-empty string');
  const t = o.stallTimeout ?? DEFAULT_STALL_TIMEOUT_S;
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0 || t > 1e6) throw invalidOption('stallTimeout', `must be a number of seconds from 0 (off) to 1e6, got ${String(t)}`);
  const action = o.stallAction ?? 'warn';
  if (action !== 'warn' && action !== 'fail') throw invalidOption('stallAction', `must be 'warn' or 'fail', got ${JSON.stringify(action)}`);
  return { port, host: o.metricsHost ?? '127.0.0.1', dataset: o.metricsDataset ?? datasetName(uri), stallTimeoutMs: Math.round(t * 1000), stallAction: action };
}
