// piscina entry: one long-lived decode loop per worker. Thin on purpose; the logic is in
// src/pipeline/decode-worker.ts.
import { runDecodeLoop } from '../src/pipeline/decode-worker.js';

export default runDecodeLoop;
