// Byte sizes as people write them on a command line: `64MiB`, `1.5GB`, `4096`.
import { invalidOption } from '../errors.js';

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  ki: 2 ** 10, kib: 2 ** 10, mi: 2 ** 20, mib: 2 ** 20, gi: 2 ** 30, gib: 2 ** 30, ti: 2 ** 40, tib: 2 ** 40,
};

/**
 * Parses `64MiB`, `512k`, `1.5GB` or a plain number of bytes. Decimal units (kB, MB) are powers
 * of 1000, binary ones (KiB, MiB) powers of 1024. `option` names the option in the error.
 */
export function parseBytes(text: string | number, option = 'size'): number {
  if (typeof text === 'number') {
    if (!Number.isFinite(text) || text < 0) throw invalidOption(option, `expected a byte size, got ${text}`);
    return Math.floor(text);
  }
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw invalidOption(option, `expected a byte size such as 64MiB, 512kB or 1048576, got ${JSON.stringify(text)}`);
  }
  return Math.floor(Number(m[1]) * unit);
}

/** `67108864` → `64.0 MiB`, for tables and progress lines. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}
