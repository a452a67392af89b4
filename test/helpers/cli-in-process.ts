// Runs the CLI's main() in this process with stdout and stderr captured: faster than a child for
// tests that run many commands, and the exit status is main()'s return value.
//
// Only strings are captured (the CLI writes strings). Under `node --test` this process's test
// runner reports to the parent through the same stdout, in Buffers (its v8-serialized events):
// those pass through, or a test finishing while a command runs went missing from the summary.
import { main } from '../../src/cli/main.js';

export async function cliInProcess(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  const capture = (write: typeof process.stdout.write, append: (s: string) => void): typeof process.stdout.write =>
    ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== 'string') return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
      append(chunk);
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture(w1, (s) => (out += s));
  process.stderr.write = capture(w2, (s) => (err += s));
  process.exitCode = undefined;
  try {
    const code = await main(['node', 'gpufeed', ...args]);
    return { code, out, err };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
    process.exitCode = undefined;
  }
}
