// What the CLI does when its output goes away. A reader that closes the pipe early
// (`gpufeed dump ... | head -1`) has all it wanted: EPIPE on stdout ends the process quietly with
// status 0 (the decode workers and shared memory go with it; cache leases of a dead process are
// ignored by the others). Any other failure to write stdout (ENOSPC on a redirected file, EIO) is
// GPUFEED_IO, status 2, since the output is incomplete. A closed stderr only silences progress lines.
import { ErrorCodes } from '../errors.js';

let installed = false;

export interface ClosedOutputHooks {
  /** Ends the process; process.exit unless a test passes its own. */
  exit?: (code: number) => void;
}

export function handleClosedOutput({ exit = (code) => process.exit(code) }: ClosedOutputHooks = {}): void {
  if (installed) return;
  installed = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') return exit(0);
    try {
      process.stderr.write(`gpufeed: error ${ErrorCodes.IO}: writing standard output: ${err.code ?? ''} ${err.message}\n`);
    } catch {
      // stderr is gone too: the status alone tells
    }
    exit(2);
  });
  process.stderr.on('error', () => {
    // Nothing left to tell it to; the command goes on and its status still reports the outcome.
  });
}
