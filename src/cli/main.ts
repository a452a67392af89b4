// `gpufeed` entry point. Each subcommand lives in its own module exporting `register(program)`;
// only the invoked one is imported, so `gpufeed inspect` does not pay for loading the AWS SDK.
import { Command, CommanderError } from 'commander';
import { ErrorCodes, GpufeedError, ioError, isFsError } from '../errors.js';

interface SubcommandModule {
  register(program: Command): void;
}

const SUBCOMMANDS: Record<string, () => Promise<SubcommandModule>> = {
  prep: () => import('./prep.js'),
  index: () => import('./index-cmd.js'),
  inspect: () => import('./inspect.js'),
  verify: () => import('./verify.js'),
  plan: () => import('./plan.js'),
  dump: () => import('./dump.js'),
  bench: () => import('./bench.js'),
  serve: () => import('./serve.js'),
  cache: () => import('./cache.js'),
};

export async function main(argv: string[] = process.argv): Promise<number> {
  const program = new Command('gpufeed')
    .description('Feed GPUs from sharded datasets (Parquet, Arrow IPC) on S3 or local disk.')
    .version(await packageVersion())
    .exitOverride()
    // Usage errors in gpufeed's own error format; the usage line says where to look next.
    .configureOutput({ outputError: (text, write) => write(`gpufeed: error ${ErrorCodes.INVALID_OPTION}: ${text.replace(/^error: /, '')}`) })
    .showHelpAfterError("(run 'gpufeed <command> --help' for usage)");
  const wanted = argv[2];
  const names = wanted && wanted in SUBCOMMANDS ? [wanted] : Object.keys(SUBCOMMANDS);
  for (const name of names) {
    const load = SUBCOMMANDS[name];
    if (!load) continue;
    try {
      (await load()).register(program);
    } catch (err) {
      // A subcommand that cannot load must not hide the others from --help.
      if (names.length === 1) throw err;
    }
  }
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    return reportError(err);
  }
}

export function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // --help and --version end with 0; every usage error (unknown option or command, missing
    // argument, no command at all) is the caller's mistake: 2, like any other bad input.
    return err.exitCode === 0 ? 0 : 2;
  }
  // A file-system failure no layer named (a --state-out or --json file, say) is still the
  // environment's, not a bug: GPUFEED_IO with the path and errno.
  if (!(err instanceof GpufeedError) && isFsError(err)) err = ioError(err.syscall ?? 'accessing', err.path ?? '(unknown path)', err);
  if (err instanceof GpufeedError) {
    process.stderr.write(`gpufeed: error ${err.code}: ${err.message}\n`);
    if (process.env.GPUFEED_DEBUG && err.stack) process.stderr.write(`${err.stack}\n`);
    return 2;
  }
  const e = err as Error;
  process.stderr.write(`gpufeed: unexpected error: ${e?.stack ?? String(err)}\n`);
  return 1;
}

async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const { packageRoot } = await import('../package-root.js');
  const pkg = JSON.parse(await readFile(`${packageRoot()}/package.json`, 'utf8')) as { version: string };
  return pkg.version;
}
