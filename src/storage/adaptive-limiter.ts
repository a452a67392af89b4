// A concurrency limiter shared by every request of one store that backs off when the service says
// "slow down" (S3's 503 SlowDown): additive increase, multiplicative decrease (AIMD), plus a short
// pause that every new request waits out. Per-request retries alone would keep hammering a prefix
// that S3 is throttling; the limiter makes the whole client slower instead.
import { backoffDelay, sleep, type BackoffPolicy } from './backoff.js';

export interface AdaptiveLimiterOptions {
  /** Most requests in flight at once. */
  maxConcurrency: number;
  /** Fewest requests in flight the limiter shrinks to. */
  minConcurrency?: number;
  /** Successes needed to grow the limit by one after a decrease. */
  increaseEvery?: number;
  /** Pause after a slow-down signal, growing with consecutive signals. */
  pause?: BackoffPolicy;
}

export class AdaptiveLimiter {
  readonly maxConcurrency: number;
  readonly minConcurrency: number;
  private limit: number;
  private active = 0;
  private readonly waiters: Array<() => void> = [];
  private successesSinceChange = 0;
  private readonly increaseEvery: number;
  private readonly pausePolicy: BackoffPolicy;
  private pausedUntil = 0;
  private consecutiveSlowDowns = 0;
  /** How many slow-down signals were seen; for stats and tests. */
  slowDowns = 0;

  constructor(options: AdaptiveLimiterOptions) {
    this.maxConcurrency = options.maxConcurrency;
    this.minConcurrency = Math.max(1, Math.min(options.minConcurrency ?? 1, options.maxConcurrency));
    this.limit = this.maxConcurrency;
    this.increaseEvery = options.increaseEvery ?? 8;
    this.pausePolicy = options.pause ?? { baseMs: 100, maxMs: 2000 };
  }

  get currentLimit(): number {
    return this.limit;
  }

  /** Waits for a slot (and any slow-down pause); returns the function that frees it. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    for (;;) {
      const wait = this.pausedUntil - Date.now();
      if (wait > 0) await sleep(wait, signal);
      if (this.active < this.limit) break;
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          const i = this.waiters.indexOf(wake);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(signal?.reason);
        };
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        signal?.addEventListener('abort', onAbort, { once: true });
        this.waiters.push(wake);
      });
    }
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.wakeNext();
    };
  }

  /** Takes a slot only if one is free now (used for hedged requests, which are optional). */
  tryAcquire(): (() => void) | undefined {
    if (this.active >= this.limit || this.pausedUntil > Date.now()) return undefined;
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.wakeNext();
    };
  }

  onSuccess(): void {
    this.consecutiveSlowDowns = 0;
    if (this.limit >= this.maxConcurrency) return;
    if (++this.successesSinceChange >= this.increaseEvery) {
      this.successesSinceChange = 0;
      this.limit++;
      this.wakeNext();
    }
  }

  onSlowDown(): void {
    this.slowDowns++;
    this.consecutiveSlowDowns++;
    this.successesSinceChange = 0;
    this.limit = Math.max(this.minConcurrency, Math.floor(this.limit / 2));
    const pause = Math.max(this.pausePolicy.baseMs / 2, backoffDelay(this.consecutiveSlowDowns, this.pausePolicy));
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + pause);
  }

  private wakeNext(): void {
    // The woken waiter re-checks the limit and the pause itself.
    if (this.active < this.limit) this.waiters.shift()?.();
  }
}
