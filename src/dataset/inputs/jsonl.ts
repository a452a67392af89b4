// JSON Lines input (also gzipped): one JSON object per line; blank lines are skipped. Lines are
// split on raw bytes so a multi-byte character never straddles a decode. A line that is not valid
// UTF-8 is bad input: decoding would turn its bytes into U+FFFD and store text nobody wrote.
import { isUtf8 } from 'node:buffer';
import { badInput } from '../row-ref.js';
import type { ColumnSpec } from '../types.js';
import { firstInvalidUtf8, openTextStream, type CountingStream } from './text-stream.js';
import { TEXT_BATCH_ROWS, type InputFile, type InputReader, type RowBatch } from './source.js';

export class JsonlReader implements InputReader {
  readonly unit = 'line' as const;
  private opened: CountingStream | undefined;

  constructor(readonly file: InputFile) {}

  get bytesRead(): number {
    return this.opened?.bytesRead() ?? 0;
  }

  async declaredColumns(): Promise<ColumnSpec[] | undefined> {
    return undefined;
  }

  async *batches(): AsyncIterable<RowBatch> {
    this.opened = openTextStream(this.file);
    let carry: Buffer | undefined;
    let line = 0;
    let rows: Record<string, unknown>[] = [];
    let refs: number[] = [];
    const parse = (buf: Buffer, start: number, end: number): void => {
      line++;
      if (end > start && buf[end - 1] === 0x0d) end--; // CRLF
      // Skip blank lines cheaply: only whitespace bytes.
      let s = start;
      while (s < end && (buf[s] === 0x20 || buf[s] === 0x09)) s++;
      if (s === end) return;
      if (!isUtf8(buf.subarray(s, end))) {
        const at = firstInvalidUtf8(buf, s, end);
        throw badInput({ file: this.file.path, row: line, unit: 'line' }, undefined,
          `not valid UTF-8 (byte 0x${(buf[at] ?? 0).toString(16).padStart(2, '0')} at byte ${at - start + 1} of the line)`);
      }
      const text = buf.toString('utf8', s, end);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw badInput({ file: this.file.path, row: line, unit: 'line' }, undefined, `not valid JSON (${(err as Error).message})`);
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw badInput({ file: this.file.path, row: line, unit: 'line' }, undefined, 'each line must be a JSON object ({"column": value, ...})');
      }
      rows.push(value as Record<string, unknown>);
      refs.push(line);
    };
    for await (const chunk of this.opened.stream) {
      let buf = chunk;
      if (carry) {
        buf = Buffer.concat([carry, chunk]);
        carry = undefined;
      }
      let start = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0) break;
        parse(buf, start, nl);
        start = nl + 1;
        if (rows.length >= TEXT_BATCH_ROWS) {
          yield { rows, refs };
          rows = [];
          refs = [];
        }
      }
      if (start < buf.length) carry = buf.subarray(start);
    }
    if (carry && carry.length > 0) parse(carry, 0, carry.length);
    if (rows.length > 0) yield { rows, refs };
  }
}
