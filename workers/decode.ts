// piscina entry: fills one batch slot. Thin on purpose; the logic is in src/pipeline/decode-worker.ts.
import { decodeBatch } from '../src/pipeline/decode-worker.js';

export default decodeBatch;
