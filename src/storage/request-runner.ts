// Runs one storage request with its own deadline, bounded retries (exponential backoff with full
// jitter) and an optional hedged duplicate. The AWS SDK retries only until response headers arrive;
// a body that stalls or is cut mid-stream is invisible to it, so each attempt here covers the whole
// response, body included, and the SDK's own maxAttempts is kept at 1.
//
// Three clocks bound a request: time to first byte of each attempt (a server that accepts and
// never answers fails fast), the attempt's deadline (body included), and one deadline for the
// whole request, every attempt and backoff included. Each retry is reported through onRetry.
import { ErrorCodes, GpufeedError } from '../errors.js';
import { AdaptiveLimiter } from './adaptive-limiter.js';
import { backoffDelay, sleep, type BackoffPolicy } from './backoff.js';
import { LatencyTracker } from './latency-tracker.js';
import { RequestLog, type RequestOutcome } from './request-log.js';
import { DeadlineExceeded, classifyS3Error, describeS3Error, toStorageError, type FailureContext } from './s3-errors.js';

export interface HedgePolicy {
  enabled: boolean;
  /** Hedge when an attempt has run this many times longer than the median of its peers. */
  factor: number;
  /** Never hedge sooner than this, in ms. */
  minDelayMs: number;
  /** Peer samples needed before hedging. */
  minSamples: number;
}

export interface RequestPolicy {
  /** Attempts per request, first one included. */
  maxAttempts: number;
  backoff: BackoffPolicy;
  /** Deadline of one attempt, response body included, in ms. */
  attemptTimeoutMs: number;
  /** An attempt with no response (headers or first byte) by then is given up, in ms. Default: attemptTimeoutMs. */
  firstByteTimeoutMs?: number;
  /** Deadline of the whole request, all attempts and backoff included, in ms. Default: unbounded. */
  requestTimeoutMs?: number;
  hedge: HedgePolicy;
  /** Told before each retry (a slow or failing store shows progress); must not throw. */
  onRetry?: (event: RetryEvent) => void;
}

export interface RetryEvent {
  /** The object, e.g. s3://bucket/prefix/key. */
  path: string;
  /** The operation, e.g. `GET bytes=0-8388607`. */
  what: string;
  /** The attempt that just failed (1-based) and the most there will be. */
  attempt: number;
  maxAttempts: number;
  /** Why it failed, in words. */
  reason: string;
  /** Backoff before the next attempt, ms. */
  delayMs: number;
  /** Since the request started, ms. */
  elapsedMs: number;
}

/** Tells the runner the attempt's response has begun (headers or first body byte). */
export type FirstByte = () => void;

export interface RunOptions {
  signal?: AbortSignal | undefined;
  /** Request size in bytes; enables hedging against peers of about this size. */
  hedgeBytes?: number;
  /**
   * The attempt sends a body (PUT, UploadPart): no first-byte deadline, since the server answers
   * only after the upload. The attempt and request deadlines still hold.
   */
  sendsBody?: boolean;
}

export interface RequestStats {
  requests: number;
  retries: number;
  hedges: number;
  hedgeWins: number;
  timeouts: number;
}

export class RequestRunner {
  readonly stats: RequestStats = { requests: 0, retries: 0, hedges: 0, hedgeWins: 0, timeouts: 0 };
  /** Attempts in flight and finished, by operation and outcome (metrics and stall reports). */
  readonly log = new RequestLog();
  private readonly latency = new LatencyTracker();

  /** Aborted by close(): every request in flight or in backoff ends, none starts. */
  readonly #closing = new AbortController();

  constructor(readonly policy: RequestPolicy, readonly limiter: AdaptiveLimiter) {}

  /** Ends every request now (the store is closing): a stalled GET must not outlive its loader. */
  close(): void {
    this.#closing.abort(new GpufeedError(ErrorCodes.CLOSED, 'the store was closed while a request was in flight'));
  }

  async run<T>(ctx: FailureContext, attemptFn: (signal: AbortSignal, firstByte: FirstByte) => Promise<T>, runOpts: RunOptions = {}): Promise<T> {
    const signal = runOpts.signal ? AbortSignal.any([runOpts.signal, this.#closing.signal]) : this.#closing.signal;
    const opts: RunOptions = { ...runOpts, signal };
    signal.throwIfAborted();
    const started = performance.now();
    const total = this.policy.requestTimeoutMs ?? Number.POSITIVE_INFINITY;
    for (let attempt = 1; ; attempt++) {
      try {
        const left = total - (performance.now() - started);
        const result = await this.attemptWithHedge(ctx, attempt, attemptFn, opts, left);
        this.limiter.onSuccess();
        return result;
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        const kind = classifyS3Error(err);
        if (kind === 'timeout') this.stats.timeouts++;
        if (kind === 'slow-down') this.limiter.onSlowDown();
        const retryable = kind === 'slow-down' || kind === 'timeout' || kind === 'retryable';
        if (!retryable || attempt >= this.policy.maxAttempts) {
          throw toStorageError(err, { ...ctx, attempts: attempt });
        }
        const delay = backoffDelay(attempt, this.policy.backoff);
        const elapsed = performance.now() - started;
        if (elapsed + delay >= total) {
          // No time for another attempt: the request's own deadline ends it.
          throw toStorageError(new DeadlineExceeded(total, 'request', describeS3Error(err)), { ...ctx, attempts: attempt });
        }
        this.stats.retries++;
        this.report({ path: ctx.path, what: ctx.what, attempt, maxAttempts: this.policy.maxAttempts, reason: describeS3Error(err), delayMs: Math.round(delay), elapsedMs: Math.round(elapsed) });
        await sleep(delay, signal);
      }
    }
  }

  private report(event: RetryEvent): void {
    try {
      this.policy.onRetry?.(event);
    } catch {
      // an observer's failure is not the request's
    }
  }

  private async attemptWithHedge<T>(ctx: FailureContext, attempt: number, attemptFn: (signal: AbortSignal, firstByte: FirstByte) => Promise<T>, opts: RunOptions, leftMs: number): Promise<T> {
    const release = await this.limiter.acquire(opts.signal);
    const primary = this.timedAttempt(attemptFn, opts, release, leftMs, this.log.start(ctx.path, ctx.what, attempt, false));
    const hedge = this.policy.hedge;
    const median = hedge.enabled && opts.hedgeBytes !== undefined ? this.latency.median(opts.hedgeBytes, hedge.minSamples) : undefined;
    if (median === undefined) return (await primary.done).value;

    const delay = Math.max(hedge.minDelayMs, hedge.factor * median);
    if (delay >= this.policy.attemptTimeoutMs) return (await primary.done).value;
    const timer = new AbortController();
    const first = await Promise.race([primary.done.then(() => 'primary' as const, () => 'primary' as const), sleep(delay, timer.signal).then(() => 'timer' as const)]);
    timer.abort();
    if (first === 'primary') return (await primary.done).value;
    const hedgeSlot = this.limiter.tryAcquire();
    if (!hedgeSlot) return (await primary.done).value;

    // The range is much slower than its peers: ask again and take whichever answer arrives first.
    this.stats.hedges++;
    const second = this.timedAttempt(attemptFn, opts, hedgeSlot, leftMs - delay, this.log.start(ctx.path, ctx.what, attempt, true));
    try {
      const winner = await Promise.any([primary.done, second.done]);
      if (winner.from === second) this.stats.hedgeWins++;
      return winner.value;
    } catch (err) {
      // Both failed: report the primary's error, which is the one the retry policy should judge.
      throw (err as AggregateError).errors[0];
    } finally {
      primary.controller.abort(new Error('hedge settled'));
      second.controller.abort(new Error('hedge settled'));
      // Losers' rejections are expected; keep them from surfacing as unhandled.
      primary.done.catch(() => {});
      second.done.catch(() => {});
    }
  }

  private timedAttempt<T>(
    attemptFn: (signal: AbortSignal, firstByte: FirstByte) => Promise<T>,
    opts: RunOptions,
    release: () => void,
    leftMs: number,
    logToken: number,
  ): { controller: AbortController; done: Promise<{ value: T; from: unknown }> } {
    const controller = new AbortController();
    // The attempt's deadline, cut to what is left of the request's.
    const requestBound = leftMs < this.policy.attemptTimeoutMs;
    const ms = Math.max(1, Math.min(this.policy.attemptTimeoutMs, leftMs));
    const deadline = requestBound ? new DeadlineExceeded(this.policy.requestTimeoutMs ?? ms, 'request') : new DeadlineExceeded(ms, 'attempt');
    const timer = setTimeout(() => controller.abort(deadline), ms);
    const fb = this.policy.firstByteTimeoutMs;
    const firstByteDeadline = fb !== undefined && !opts.sendsBody && fb < ms ? new DeadlineExceeded(fb, 'first byte') : undefined;
    let firstByteTimer = firstByteDeadline ? setTimeout(() => controller.abort(firstByteDeadline), fb) : undefined;
    const firstByte: FirstByte = () => {
      if (firstByteTimer) clearTimeout(firstByteTimer);
      firstByteTimer = undefined;
    };
    const onAbort = (): void => controller.abort(opts.signal?.reason);
    if (opts.signal?.aborted) controller.abort(opts.signal.reason);
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    const started = performance.now();
    this.stats.requests++;
    const handle = { controller, done: undefined as unknown as Promise<{ value: T; from: unknown }> };
    let outcome: RequestOutcome = 'error';
    handle.done = (async () => {
      try {
        const value = await attemptFn(controller.signal, firstByte);
        if (controller.signal.aborted) throw controller.signal.reason;
        if (opts.hedgeBytes !== undefined) this.latency.record(opts.hedgeBytes, performance.now() - started);
        outcome = 'ok';
        return { value, from: handle };
      } catch (err) {
        outcome = attemptOutcome(err, controller.signal, deadline, firstByteDeadline);
        // An abort by our own deadline surfaces from the SDK as a generic AbortError; name the cause.
        const reason: unknown = controller.signal.reason;
        if (controller.signal.aborted && (reason === deadline || reason === firstByteDeadline)) throw reason;
        if (err instanceof GpufeedError) throw err;
        throw err;
      } finally {
        clearTimeout(timer);
        firstByte();
        opts.signal?.removeEventListener('abort', onAbort);
        release();
        this.log.end(logToken, outcome);
      }
    })();
    return handle;
  }
}

function attemptOutcome(err: unknown, signal: AbortSignal, ...deadlines: (DeadlineExceeded | undefined)[]): RequestOutcome {
  if (signal.aborted) return deadlines.includes(signal.reason as DeadlineExceeded) ? 'timeout' : 'aborted';
  const kind = classifyS3Error(err);
  return kind === 'timeout' ? 'timeout' : kind === 'slow-down' ? 'throttled' : 'error';
}
