// A predicate for assert.throws / assert.rejects: a GpufeedError GPUFEED_INVALID_OPTION naming
// `option` (and matching `pattern`, when given).
import assert from 'node:assert/strict';
import { ErrorCodes, GpufeedError } from '../../src/errors.js';

export function invalidOptionNaming(option: string, pattern?: RegExp): (err: unknown) => true {
  return (err: unknown) => {
    assert.ok(err instanceof GpufeedError, String(err));
    assert.equal(err.code, ErrorCodes.INVALID_OPTION);
    assert.equal(err.details.option, option);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}
