// Finds the package root from this module's location, both from src/ (tsx) and dist/src/ (built).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return (cached = dir);
    dir = dirname(dir);
  }
  throw new Error(`gpufeed: cannot find the package root above ${fileURLToPath(import.meta.url)}`);
}

/** Path of a compiled piscina entry file: workers run as built JavaScript, also under tsx. */
export function workerEntry(name: string): string {
  return join(packageRoot(), 'dist', 'workers', `${name}.js`);
}
