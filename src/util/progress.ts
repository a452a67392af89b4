// A one-line progress display on stderr, shown only when stderr is a TTY so logs and pipes stay clean.
import { formatBytes } from './bytes.js';

export interface ProgressState {
  rows: number;
  bytes: number;
  shards: number;
  /** Input bytes consumed and total, when known (drives the percentage). */
  inputDone?: number;
  inputTotal?: number;
}

export class ProgressLine {
  private readonly enabled: boolean;
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly label: string, stream: NodeJS.WriteStream = process.stderr, enabled?: boolean) {
    this.enabled = enabled ?? Boolean(stream.isTTY);
    this.stream = stream;
  }

  private readonly stream: NodeJS.WriteStream;

  update(state: ProgressState, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return; // redraw at most 10 times a second
    this.lastDraw = now;
    const secs = Math.max((now - this.started) / 1000, 1e-3);
    let bar = '';
    if (state.inputTotal && state.inputDone !== undefined) {
      const frac = Math.min(1, state.inputDone / state.inputTotal);
      const width = 24;
      const full = Math.round(frac * width);
      bar = `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}% `;
    }
    const line = `${this.label} ${bar}${state.rows} rows, ${state.shards} shards, ${formatBytes(state.bytes)}, ${Math.round(state.rows / secs)} rows/s`;
    const width = this.stream.columns ?? 120;
    this.stream.write(`\r${line.slice(0, width - 1)}\x1b[K`);
    this.drawn = true;
  }

  done(): void {
    if (this.enabled && this.drawn) this.stream.write('\n');
  }
}
