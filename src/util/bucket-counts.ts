// Cumulative-free bucket counts of observed durations: a few array increments per observation,
// read by a metrics scrape (src/metrics/) as a Prometheus histogram. No dependency on prom-client,
// so the stages that count stay free of it.

/** Upper bounds in seconds for waits and request durations: 1 ms to 2 min. */
export const DURATION_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface BucketSnapshot {
  /** Upper bounds (le) of the buckets, ascending; +Inf is implied. */
  bounds: readonly number[];
  /** Observations per bucket (not cumulative), one more than bounds: the last is above every bound. */
  counts: number[];
  sum: number;
  count: number;
}

export class BucketCounts {
  readonly bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[] = DURATION_BUCKETS) {
    this.bounds = bounds;
    this.#counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    this.#counts[i]! += 1;
    this.#sum += value;
    this.#count += 1;
  }

  snapshot(): BucketSnapshot {
    return { bounds: this.bounds, counts: [...this.#counts], sum: this.#sum, count: this.#count };
  }
}
