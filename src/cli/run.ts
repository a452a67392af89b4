// Runnable CLI entry for development and tests: `node --import tsx src/cli/run.ts <command> ...`.
import { main } from './main.js';

process.exitCode = await main(process.argv);
