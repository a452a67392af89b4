// How hyparquet hands over Parquet's annotated values, for gpufeed's readers (prep's input reader
// and the decode workers alike): dates, times, timestamps (also INT96) stay the integers the file
// stores, in the unit ColumnSpec.unit names, rather than JS Dates (millisecond precision); JSON
// stays its text.
import type { ParquetParsers } from 'hyparquet';

const text = new TextDecoder();

export const RAW_PARQUET_PARSERS: Partial<ParquetParsers> = {
  timestampFromMilliseconds: (v) => v as unknown as Date,
  timestampFromMicroseconds: (v) => v as unknown as Date,
  timestampFromNanoseconds: (v) => v as unknown as Date,
  dateFromDays: (v) => v as unknown as Date,
  jsonFromBytes: (b) => (b ? text.decode(b) : b),
};
