// Runnable CLI entry for development and tests: `node --import tsx src/cli/run.ts <command> ...`.
import './threadpool.js';
import { handleClosedOutput } from './closed-output.js';
import { main } from './main.js';

handleClosedOutput();
process.exitCode = await main(process.argv);
