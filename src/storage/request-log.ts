// What a store's requests are doing, for metrics and stall reports (src/metrics/): the attempts in
// flight (object, operation, attempt, start time) and, per operation and outcome, a count and a
// duration histogram. Kept by the request runner at each attempt's start and end: a map insert and
// delete and a few increments, next to a network round trip.
import { BucketCounts, type BucketSnapshot } from '../util/bucket-counts.js';

export type RequestOutcome = 'ok' | 'error' | 'timeout' | 'throttled' | 'aborted';

export interface InFlightRequest {
  /** The object, e.g. s3://bucket/prefix/key. */
  path: string;
  /** e.g. `GET bytes=0-8388607`. */
  what: string;
  /** 1-based attempt of the request this is (a hedge shares its primary's number). */
  attempt: number;
  hedge: boolean;
  /** Date.now() when it started. */
  startedAt: number;
}

export interface RequestCounts {
  operation: string;
  outcome: RequestOutcome;
  count: number;
  durations: BucketSnapshot;
}

export class RequestLog {
  readonly #inFlight = new Map<number, InFlightRequest>();
  readonly #done = new Map<string, { operation: string; outcome: RequestOutcome; durations: BucketCounts }>();
  #next = 0;

  /** An attempt starts; returns its token for end(). */
  start(path: string, what: string, attempt: number, hedge: boolean): number {
    const token = ++this.#next;
    this.#inFlight.set(token, { path, what, attempt, hedge, startedAt: Date.now() });
    return token;
  }

  end(token: number, outcome: RequestOutcome): void {
    const r = this.#inFlight.get(token);
    if (!r) return;
    this.#inFlight.delete(token);
    const operation = operationOf(r.what);
    const key = `${operation}\0${outcome}`;
    let entry = this.#done.get(key);
    if (!entry) this.#done.set(key, (entry = { operation, outcome, durations: new BucketCounts() }));
    entry.durations.observe((Date.now() - r.startedAt) / 1000);
  }

  inFlight(): InFlightRequest[] {
    return [...this.#inFlight.values()];
  }

  counts(): RequestCounts[] {
    return [...this.#done.values()].map((e) => {
      const durations = e.durations.snapshot();
      return { operation: e.operation, outcome: e.outcome, count: durations.count, durations };
    });
  }
}

/** `GET bytes=0-99` -> GET; `CreateMultipartUpload` stays as it is. */
export function operationOf(what: string): string {
  const space = what.indexOf(' ');
  return space < 0 ? what : what.slice(0, space);
}
