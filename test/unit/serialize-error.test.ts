// Errors crossing from a decode worker to the loader (errors.ts): what an error names survives the
// trip, also for a GpufeedError of another copy of errors.ts, for which instanceof fails (a module
// loaded twice under two URLs); an unknown code becomes GPUFEED_INTERNAL with nothing it claims.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, GpufeedError, deserializeError, serializeError } from '../../src/errors.js';

test('serializeError keeps code and details: a GpufeedError, and a look-alike of another module copy', () => {
  const ours = new GpufeedError(ErrorCodes.BAD_INPUT, 'row 3 does not decode', { shard: 's0', row: 3, path: 'c/3.JPEG' });
  class OtherCopy extends Error {
    code = ErrorCodes.BAD_INPUT;
    details = { shard: 's0', row: 3, path: 'c/3.JPEG' };
  }
  const foreign = new OtherCopy('row 3 does not decode');
  assert.equal(foreign instanceof GpufeedError, false);
  for (const err of [ours, foreign]) {
    // The worker posts the serialized form; the message port clones it.
    const back = deserializeError(structuredClone(serializeError(err)));
    assert.equal(back.code, ErrorCodes.BAD_INPUT);
    assert.equal(back.message, 'row 3 does not decode');
    assert.deepEqual(back.details, { shard: 's0', row: 3, path: 'c/3.JPEG' });
  }
  const unknown = Object.assign(new Error('boom'), { code: 'ENOTGPUFEED', details: { shard: 's0' } });
  const s = serializeError(unknown);
  assert.equal(s.code, ErrorCodes.INTERNAL);
  assert.equal(s.details, undefined);
});
