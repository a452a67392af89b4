// Recent request durations, grouped by request size (powers of two), so a slow range can be told
// apart from a merely large one. Feeds the hedging decision in request-runner.ts.

const WINDOW = 64;

export class LatencyTracker {
  private readonly byClass = new Map<number, number[]>();

  record(bytes: number, ms: number): void {
    const cls = sizeClass(bytes);
    let window = this.byClass.get(cls);
    if (!window) {
      window = [];
      this.byClass.set(cls, window);
    }
    window.push(ms);
    if (window.length > WINDOW) window.shift();
  }

  /** Median duration of recent requests of about `bytes`, or undefined with fewer than `minSamples`. */
  median(bytes: number, minSamples: number): number | undefined {
    const window = this.byClass.get(sizeClass(bytes));
    if (!window || window.length < minSamples) return undefined;
    const sorted = [...window].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }
}

function sizeClass(bytes: number): number {
  return bytes <= 1 ? 0 : Math.ceil(Math.log2(bytes));
}
