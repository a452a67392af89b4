// How tests start the gpufeed CLI as a child process: the compiled dist/src/cli/run.js when the
// build is current with src/ (a child under tsx spends 2-5 s compiling before it runs; the built
// one starts in ~0.5 s), else src/cli/run.ts under tsx, so a test never runs stale code.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const BUILT_CLI = join(ROOT, 'dist', 'src', 'cli', 'run.js');

let cached: string[] | undefined;

/** True when every src/**.ts has a dist/src/**.js at least as new as it. */
function distIsCurrent(): boolean {
  if (!existsSync(BUILT_CLI)) return false;
  const src = join(ROOT, 'src');
  const stack = [src];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        stack.push(path);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const built = join(ROOT, 'dist', 'src', relative(src, path).replace(/\.ts$/, '.js'));
        if (!existsSync(built) || statSync(built).mtimeMs < statSync(path).mtimeMs) return false;
      }
    }
  }
  return true;
}

/** Arguments for `process.execPath` that run the CLI; append the CLI's own arguments. */
export function cliArgv(): string[] {
  cached ??= distIsCurrent() ? [BUILT_CLI] : ['--import', 'tsx', join('src', 'cli', 'run.ts')];
  return [...cached];
}

/** Whether children run the built CLI (for a test's diagnostic line). */
export function cliIsBuilt(): boolean {
  return cliArgv()[0] === BUILT_CLI;
}
