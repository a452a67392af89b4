// A loader's observers, in one place: the Prometheus registry (built on first use), its endpoint
// (metricsPort), the stall watch (stallTimeout, stallAction) and the SIGUSR2 report. The loader
// calls start() once open, waitStarted()/waitEnded() around a wait that blocks, close() first.
// prom-client is imported only when metrics are first asked for: a loader without them never loads it.
import type { Registry } from 'prom-client';
import type { LoaderProbe } from './probe.js';
import type { ResolvedMetricsOptions } from './options.js';
import { startMetricsServer, type MetricsServer } from './server.js';
import { diagnose, StallWatch, type StallReport } from './stall.js';

export class LoaderObservers {
  readonly #probe: LoaderProbe;
  readonly #options: ResolvedMetricsOptions;
  readonly #watch: StallWatch;
  #registry: Promise<Registry> | undefined;
  #server: MetricsServer | undefined;
  #onSignal: (() => void) | undefined;
  #closed = false;

  constructor(probe: LoaderProbe, options: ResolvedMetricsOptions) {
    this.#probe = probe;
    this.#options = options;
    this.#watch = new StallWatch(probe, options.dataset, options.stallTimeoutMs, options.stallAction);
  }

  registry(): Promise<Registry> {
    this.#registry ??= import('./registry.js').then(({ buildRegistry }) =>
      buildRegistry(this.#probe, this.#options.dataset, () => ({ stalls: this.#watch.stalls, stalled: this.#watch.stalled ? 1 : 0 })));
    return this.#registry;
  }

  /** The endpoint's URL (http://host:port/metrics), or undefined without metricsPort. */
  get address(): string | undefined {
    return this.#server?.url;
  }

  async start(): Promise<void> {
    if (this.#options.port !== undefined) {
      this.#server = await startMetricsServer(await this.registry(), this.#options.host, this.#options.port);
      process.stderr.write(`gpufeed: metrics on ${this.#server.url} (rank ${this.#probe.world.rank})\n`);
    }
    // A report on demand (kill -USR2 <pid>), only while this loader is open.
    this.#onSignal = () => {
      void diagnose(this.#probe, this.#options.dataset).then((r) => process.stderr.write(`${r.text}\n`), () => {});
    };
    process.on('SIGUSR2', this.#onSignal);
  }

  waitStarted(): void {
    this.#watch.waitStarted();
  }

  waitEnded(): void {
    this.#watch.waitEnded();
  }

  diagnose(): Promise<StallReport> {
    return diagnose(this.#probe, this.#options.dataset);
  }

  async metrics(): Promise<Record<string, number>> {
    const [{ metricsDict }, registry] = await Promise.all([import('./registry.js'), this.registry()]);
    return metricsDict(registry);
  }

  async metricsText(): Promise<string> {
    return (await this.registry()).metrics();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch.close();
    if (this.#onSignal) process.off('SIGUSR2', this.#onSignal);
    await this.#server?.close();
  }
}
