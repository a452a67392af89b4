// CSV input (RFC 4180; also gzipped): a header row names the columns; quoted fields may hold
// commas, quotes ("") and newlines. An empty unquoted field is null; a quoted "" is an empty string.
// Cells stay text until the schema is known; csvCellValue then converts them. Input that is not
// valid UTF-8 is bad input (a lenient decode would store U+FFFD in place of the bytes).
import { badInput, type RowRef } from '../row-ref.js';
import type { ColumnSpec } from '../types.js';
import { firstInvalidUtf8, openTextStream, type CountingStream } from './text-stream.js';
import { TEXT_BATCH_ROWS, type InputFile, type InputReader, type RowBatch } from './source.js';

export class CsvReader implements InputReader {
  readonly unit = 'line' as const;
  private opened: CountingStream | undefined;

  constructor(readonly file: InputFile, private readonly delimiter = ',') {}

  get bytesRead(): number {
    return this.opened?.bytesRead() ?? 0;
  }

  async declaredColumns(): Promise<ColumnSpec[] | undefined> {
    return undefined;
  }

  async *batches(): AsyncIterable<RowBatch> {
    this.opened = openTextStream(this.file);
    const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    const delim = this.delimiter;
    let header: string[] | undefined;
    let rows: Record<string, unknown>[] = [];
    let refs: number[] = [];

    // Parser state, kept across chunks.
    let fields: (string | null)[] = [];
    let field = '';
    let quoted = false; // the current field started with a quote
    let inQuotes = false;
    let quotePending = false; // saw a quote inside quotes: either "" or the closing quote
    let line = 1; // current line
    let recordLine = 1; // line where the current record started
    let fieldStarted = false;

    const endField = (): void => {
      fields.push(!quoted && field === '' ? null : field);
      field = '';
      quoted = false;
      fieldStarted = false;
    };
    const endRecord = (): void => {
      endField();
      const at: RowRef = { file: this.file.path, row: recordLine, unit: 'line' };
      if (fields.length === 1 && fields[0] === null) {
        // blank line
      } else if (!header) {
        header = fields.map((f, i) => f ?? `column_${i + 1}`);
        const seen = new Set<string>();
        for (const h of header) {
          if (seen.has(h)) throw badInput(at, h, 'appears twice in the CSV header');
          seen.add(h);
        }
      } else {
        if (fields.length !== header.length) {
          throw badInput(at, undefined, `has ${fields.length} fields but the header has ${header.length}`);
        }
        const row: Record<string, unknown> = {};
        for (let i = 0; i < header.length; i++) row[header[i]!] = fields[i];
        rows.push(row);
        refs.push(recordLine);
      }
      fields = [];
      recordLine = line;
    };

    const feed = (text: string): void => {
      for (let i = 0; i < text.length; i++) {
        const c = text[i]!;
        if (inQuotes) {
          if (quotePending) {
            quotePending = false;
            if (c === '"') {
              field += '"';
              continue;
            }
            inQuotes = false; // that was the closing quote; fall through to handle c
          } else if (c === '"') {
            quotePending = true;
            continue;
          } else {
            if (c === '\n') line++;
            field += c;
            continue;
          }
        }
        if (c === delim) {
          endField();
        } else if (c === '\n') {
          line++;
          if (field.endsWith('\r')) field = field.slice(0, -1);
          endRecord();
        } else if (c === '"' && !fieldStarted) {
          inQuotes = true;
          quoted = true;
          fieldStarted = true;
        } else if (c === '\r' && quoted) {
          // CR after a closing quote: part of CRLF
        } else {
          if (quoted) {
            throw badInput({ file: this.file.path, row: line, unit: 'line' }, undefined, 'unexpected text after a closing quote');
          }
          field += c;
          fieldStarted = true;
        }
      }
    };

    for await (const chunk of this.opened.stream) {
      // Run a whole chunk through; hand out full batches between chunks.
      let text: string;
      try {
        text = decoder.decode(chunk, { stream: true });
      } catch {
        throw this.invalidUtf8(chunk, line);
      }
      // Slice big chunks so a batch never grows far past TEXT_BATCH_ROWS.
      feed(text);
      if (rows.length >= TEXT_BATCH_ROWS) {
        yield { rows, refs };
        rows = [];
        refs = [];
      }
    }
    let tail: string;
    try {
      tail = decoder.decode();
    } catch {
      throw badInput({ file: this.file.path, row: line, unit: 'line' }, undefined, 'not valid UTF-8 (the file ends inside a multi-byte character)');
    }
    feed(tail);
    if (inQuotes && !quotePending) {
      throw badInput({ file: this.file.path, row: recordLine, unit: 'line' }, undefined, 'quoted field is not closed before the end of the file');
    }
    if (quotePending) inQuotes = false;
    if (field !== '' || fields.length > 0 || quoted) endRecord();
    if (rows.length > 0) yield { rows, refs };
  }

  /** The error for a chunk the decoder refused; `line` is the parser's line at the chunk's start. */
  private invalidUtf8(chunk: Buffer, line: number): Error {
    // Up to 3 leading continuation bytes may finish a character begun in the previous chunk.
    let from = 0;
    while (from < 3 && from < chunk.length && (chunk[from]! & 0xc0) === 0x80) from++;
    let at = firstInvalidUtf8(chunk, from);
    if (at < 0) at = from > 0 ? 0 : chunk.length;
    for (let i = 0; i < at; i++) if (chunk[i] === 0x0a) line++;
    return badInput({ file: this.file.path, row: line, unit: 'line' }, undefined,
      `not valid UTF-8 (byte 0x${(chunk[at] ?? 0).toString(16).padStart(2, '0')})`);
  }
}

const INT_RE = /^[+-]?\d+$/;
const FLOAT_RE = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i;

/** A cell's value as inference sees it: number, boolean, array (from `[...]`), or the text. */
export function csvGuess(text: string | null): unknown {
  if (text === null) return null;
  const t = text.trim();
  if (INT_RE.test(t)) {
    const n = Number(t);
    return Number.isSafeInteger(n) ? n : BigInt(t);
  }
  if (FLOAT_RE.test(t)) return parseFloatLoose(t);
  const lower = t.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  if (t.startsWith('[') && t.endsWith(']')) {
    try {
      return JSON.parse(t) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

function parseFloatLoose(t: string): number {
  const l = t.toLowerCase().replace(/^\+/, '');
  if (l === 'inf' || l === 'infinity') return Infinity;
  if (l === '-inf' || l === '-infinity') return -Infinity;
  if (l === 'nan' || l === '-nan') return NaN;
  return Number(t);
}

/** Converts one CSV cell to the column's type; what does not fit is left for the builder to report. */
export function csvCellValue(text: unknown, col: ColumnSpec): unknown {
  if (text === null || text === undefined) return null;
  if (typeof text !== 'string') return text;
  if (col.kind === 'bytes') return text;
  const t = text.trim();
  if (col.kind === 'fixed' || col.kind === 'list') {
    try {
      return JSON.parse(t) as unknown;
    } catch {
      return text;
    }
  }
  if (col.dtype === 'bool') {
    const l = t.toLowerCase();
    if (l === 'true' || l === '1') return true;
    if (l === 'false' || l === '0') return false;
    return text;
  }
  if ((col.dtype === 'int64' || col.dtype === 'uint64') && INT_RE.test(t)) return BigInt(t);
  if (INT_RE.test(t)) return Number(t);
  if (FLOAT_RE.test(t)) return parseFloatLoose(t);
  return text;
}
