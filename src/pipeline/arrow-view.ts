// A batch seen as an Arrow RecordBatch without copying its columns: every Arrow buffer is a view of
// the batch's pinned slot. Two things are built, both tiny: validity bitmaps (gpufeed keeps one
// byte per row, Arrow one bit) and the schema. bool columns are one byte per value in gpufeed, so
// they appear as Arrow Uint8 (Arrow's Bool is bit-packed and would need a copy).
import { Field, FixedSizeList, List, RecordBatch, Schema, Struct, Uint8, makeData, type DataType, type Data, type Utf8 } from 'apache-arrow';
import { arrowElementType } from '../formats/schema-map.js';
import type { DType } from '../dataset/types.js';
import type { Batch, VarColumn } from './batch.js';

// makeData's overloads are keyed by the concrete Arrow type; elementType() pairs each dtype with its
// typed array, which the compiler cannot follow through DataType.
const makePrimitive = makeData as unknown as (props: {
  type: DataType; length: number; nullCount?: number; nullBitmap?: Uint8Array | undefined; data: ArrayLike<unknown>;
}) => Data;

/** The Arrow type of one element; bool stays one byte (Uint8), as it is in the slot. */
function elementType(dtype: DType): DataType {
  return dtype === 'bool' ? new Uint8() : arrowElementType(dtype);
}

/** Packs gpufeed's one-byte-per-row validity into an Arrow bitmap; returns the null count too. */
function bitmap(valid: Uint8Array): { bits: Uint8Array; nulls: number } {
  const bits = new Uint8Array(Math.ceil(valid.length / 8));
  let nulls = 0;
  for (let i = 0; i < valid.length; i++) {
    if (valid[i]) bits[i >> 3]! |= 1 << (i & 7);
    else nulls++;
  }
  return { bits, nulls };
}

/** The batch as an Arrow RecordBatch whose column buffers are views of the slot (valid until release). */
export function toArrowRecordBatch(batch: Batch): RecordBatch {
  const fields: Field[] = [];
  const children: Data[] = [];
  const length = batch.size;
  for (const region of batch.layout.columns) {
    const column = batch.columns[region.name]!;
    const validity = batch.valid[region.name];
    const { bits, nulls } = validity ? bitmap(validity) : { bits: undefined, nulls: 0 };
    const nullable = region.validOffset >= 0;
    let type: DataType;
    let data: Data;
    if (region.kind === 'scalar') {
      type = elementType(region.dtype);
      data = makePrimitive({ type, length, nullCount: nulls, nullBitmap: bits, data: column as ArrayLike<unknown> });
    } else if (region.kind === 'fixed') {
      const per = region.shape.reduce((a, b) => a * b, 1);
      const childType = elementType(region.dtype);
      const child = makePrimitive({ type: childType, length: length * per, data: column as ArrayLike<unknown> });
      type = new FixedSizeList(per, new Field('item', childType, false));
      data = makeData({ type: type as FixedSizeList, length, nullCount: 0, child });
    } else {
      const { offsets, values } = column as VarColumn;
      if (region.kind === 'bytes') {
        type = elementType(region.dtype);
        data = makeData({ type: type as Utf8, length, nullCount: nulls, nullBitmap: bits, valueOffsets: offsets, data: values as Uint8Array });
      } else {
        const childType = elementType(region.dtype);
        const child = makePrimitive({ type: childType, length: values.length, data: values });
        type = new List(new Field('item', childType, false));
        data = makeData({ type: type as List, length, nullCount: nulls, nullBitmap: bits, valueOffsets: offsets, child });
      }
    }
    const meta = region.kind === 'fixed' ? new Map([['gpufeed.shape', JSON.stringify(region.shape)]]) : undefined;
    fields.push(new Field(region.name, type, nullable, meta));
    children.push(data);
  }
  const schema = new Schema(fields);
  return new RecordBatch(schema, makeData({ type: new Struct(fields), length, nullCount: 0, children }));
}
