#!/usr/bin/env node
// Runs the compiled CLI (npm install builds it through the `prepare` script).
import '../dist/src/cli/threadpool.js';
import { handleClosedOutput } from '../dist/src/cli/closed-output.js';
import { main } from '../dist/src/cli/main.js';

handleClosedOutput();
main(process.argv).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err); process.exitCode = 1; },
);
