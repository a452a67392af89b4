// `gpufeed` entry point. Each subcommand lives in its own module exporting `register(program)`;
// only the invoked one is imported, so `gpufeed inspect` does not pay for loading the AWS SDK.
import { Command, CommanderError } from 'commander';
import { ErrorCodes, GpufeedError, ioError, isFsError } from '../errors.js';

interface SubcommandModule {
  register(program: Command): void;
}

/**
 * Each subcommand's loader, and what the top-level help says of it: `gpufeed --help` and
 * `--version` then load no subcommand module (prep alone pulls in the Parquet and Arrow writers).
 * test/unit/cli-main.test.ts checks that every entry matches what its module registers.
 */
export const SUBCOMMANDS: Record<string, { term: string; summary: string; load: () => Promise<SubcommandModule> }> = {
  prep: {
    term: 'prep [options] <inputs...>',
    summary: 'Convert JSON Lines (.jsonl, .jsonl.gz), CSV, Parquet or Arrow IPC inputs into a sharded gpufeed dataset',
    load: () => import('./prep.js'),
  },
  index: {
    term: 'index [options] <inputs...>',
    summary: 'Write index.json for Parquet / Arrow IPC files (file or stream format): files, folders, globs or S3 prefixes (footers via ranged reads; one streamed read per file for its sha256)',
    load: () => import('./index-cmd.js'),
  },
  inspect: { term: 'inspect [options] <dataset>', summary: 'Show a dataset: schema, shards (path, format, rows, bytes) and totals', load: () => import('./inspect.js') },
  verify: { term: 'verify [options] <dataset>', summary: 'Check every shard of a dataset against index.json: present, right size, right sha256', load: () => import('./verify.js') },
  plan: {
    term: 'plan [options] <dataset...>',
    summary: 'print the sample order from the manifest alone: one JSON line per batch, {"rank","epoch","step","ids"}; ' +
      'without --rank, every rank, step-major (all ranks of step k, rank 0 first, then step k+1); ' +
      'a mixture (several datasets, --weights/--samples/--repeat) adds "streams", the stream of each id',
    load: () => import('./plan.js'),
  },
  dump: { term: 'dump [options] <dataset...>', summary: 'load batches and print one JSON line per batch: {"rank","epoch","step","ids","columns"}; a mixture (several datasets, --weights/--samples/--repeat) adds "streams"', load: () => import('./dump.js') },
  bench: { term: 'bench [options] [dataset...]', summary: 'measure samples/s and GB/s delivered into pinned batches (--demo: on a generated demo dataset)', load: () => import('./bench.js') },
  serve: {
    term: 'serve [options] <dataset...>',
    summary: 'serve batches to a consumer process (the Python client) over an inherited Unix socket: JSON control messages, batches in shared memory',
    load: () => import('./serve.js'),
  },
  cache: { term: 'cache', summary: 'Inspect, verify or clear the node-local shard cache', load: () => import('./cache.js') },
};

export async function main(argv: string[] = process.argv): Promise<number> {
  const program = new Command('gpufeed')
    .description('Feed GPUs from sharded datasets (Parquet, Arrow IPC) on S3 or local disk.')
    .version(await packageVersion())
    .exitOverride()
    // Usage errors in gpufeed's own error format; the usage line says where to look next.
    .configureOutput({ outputError: (text, write) => write(`gpufeed: error ${ErrorCodes.INVALID_OPTION}: ${text.replace(/^error: /, '')}`) })
    .showHelpAfterError("(run 'gpufeed <command> --help' for usage)");
  // `gpufeed help prep` is `gpufeed prep --help`.
  const wanted = argv[2] === 'help' && argv[3] ? argv[3] : argv[2];
  try {
    const sub = wanted !== undefined ? SUBCOMMANDS[wanted] : undefined;
    if (sub) (await sub.load()).register(program);
    else registerSummaries(program);
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    return reportError(err);
  }
}

/** Top-level help, --version and unknown commands: each subcommand as a term and a line, nothing loaded. */
export function registerSummaries(program: Command): void {
  for (const [name, { summary }] of Object.entries(SUBCOMMANDS)) program.command(name).description(summary);
  program.configureHelp({ subcommandTerm: (cmd) => SUBCOMMANDS[cmd.name()]?.term ?? cmd.name() });
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
