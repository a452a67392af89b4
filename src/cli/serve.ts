// `gpufeed serve`: serves one consumer process (the Python client) over a connected Unix socket it
// inherited as a descriptor: control messages on the socket, batches in shared memory (see
// src/bridge/protocol.ts). No socket file exists anywhere: the consumer makes a socketpair and
// passes one end. The server lives exactly as long as that socket: when it ends (the consumer
// closed it, exited, or was killed) the loader is closed and this process exits.
import { writeSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Command, CommanderError } from 'commander';
import { ErrorCodes, GpufeedError, invalidOption, serializeError } from '../errors.js';
import { Loader } from '../pipeline/loader.js';
import type { ResumeState } from '../plan/index.js';
import { BridgeServer } from '../bridge/server.js';
import { encodeMessage, errorMessage } from '../bridge/protocol.js';
import { addLoaderOptions, loaderOptionsFromFlags, type LoaderFlags } from './loader-options.js';
import { startupMark, processStartedAt } from '../pipeline/startup-trace.js';
import { datasetInputFrom } from './mixture-flags.js';

interface ServeFlags extends LoaderFlags {
  fd?: string;
  resumeJson?: string;
}

/** After the server stops, whatever still runs (a decode stuck on storage) gets this long. */
const EXIT_GRACE_MS = 2000;

function parseFd(v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || !/^\d+$/.test(v) || !Number.isSafeInteger(n) || n > 0x7fffffff) {
    throw invalidOption('--fd', `must be the number of an inherited socket descriptor, got ${JSON.stringify(v)}`);
  }
  return n;
}

function parseResumeJson(text: string): ResumeState {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw invalidOption('--resume-json', `is not JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalidOption('--resume-json', 'must be a JSON object (a state from loader.state())');
  return v as ResumeState;
}

/** --fd from the raw command line, for errors raised before commander hands us the flags. */
function fdFromArgv(argv: readonly string[]): number | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = a === '--fd' ? argv[i + 1] : a.startsWith('--fd=') ? a.slice(5) : undefined;
    if (v !== undefined && /^\d+$/.test(v)) return Number(v);
  }
  return undefined;
}

/**
 * Best effort: tells the consumer why we stop before we could serve it, straight on the inherited
 * descriptor (still blocking: no Socket has opened it). stderr carries the same message.
 */
function reportOnFd(fd: number | undefined, err: unknown): void {
  if (fd === undefined) return;
  try {
    writeSync(fd, encodeMessage(errorMessage(serializeError(err), true)));
  } catch {
    // Not a socket, or the consumer is gone: stderr is the fallback.
  }
}

export function register(program: Command): void {
  const cmd = program
    .command('serve <dataset...>')
    .description('serve batches to a consumer process (the Python client) over an inherited Unix socket: JSON control messages, batches in shared memory');
  addLoaderOptions(cmd)
    .option('--fd <n>', 'descriptor of the connected Unix stream socket this process inherited (one end of a socketpair)')
    .option('--resume-json <json>', 'resume from this state (the JSON text of loader.state()), instead of --resume <file>')
    .exitOverride((err: CommanderError) => {
      // Bad flags never reach the action: report them on the socket too, as INVALID_OPTION.
      if (err.exitCode !== 0) reportOnFd(fdFromArgv(process.argv), new GpufeedError(ErrorCodes.INVALID_OPTION, err.message.replace(/^error: /, ''), { option: 'argv' }));
      throw err;
    })
    .action(async (datasets: string[], flags: ServeFlags) => {
      // The process's start, then the CLI's modules loaded (benchmarks/startup.ts).
      startupMark('process-start', processStartedAt());
      startupMark('serve-action');
      let fd: number;
      try {
        fd = parseFd(flags.fd);
      } catch (err) {
        reportOnFd(fdFromArgv(process.argv), err);
        throw err;
      }
      let socket: Socket;
      try {
        socket = new Socket({ fd, readable: true, writable: true });
      } catch (err) {
        throw invalidOption('--fd', `descriptor ${fd} is not a usable socket: ${(err as Error).message}`, { fd });
      }
      // Ctrl-C reaches the whole foreground process group; the consumer decides what it means, and
      // we stop when its socket ends.
      process.on('SIGINT', () => {});
      const server = new BridgeServer(socket, async () => {
        const options = loaderOptionsFromFlags(flags);
        if (flags.resumeJson !== undefined) {
          if (flags.resume !== undefined) throw invalidOption('--resume-json', 'cannot be combined with --resume');
          options.resume = parseResumeJson(flags.resumeJson);
        }
        // The client maps only the ring's slabs: no one-off slots for oversize batches.
        return Loader.open(datasetInputFrom(datasets, flags), options, { slotsHoldLargestRows: true });
      });
      server.start();
      const outcome = await server.done;
      // Whatever still holds the event loop (a decode stuck in storage) must not outlive the consumer.
      setTimeout(() => process.exit(process.exitCode ?? 0), EXIT_GRACE_MS).unref();
      if (outcome.error !== undefined) throw outcome.error;
    });
}
