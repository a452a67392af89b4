// A multi-dim fixed-shape cell as Parquet readers assemble it (pyarrow's nested fixed_size_list
// becomes lists of lists): nested arrays, checked level by level against the shape and flattened
// row-major. Only the total would let [[1,2,3,4,5],[6,7,8],[9,10,11,12]] pass as shape [3, 4].

/** Why a cell does not have `shape`: the first offending place, in words. */
export class NestedShapeMismatch extends Error {}

/**
 * The cell's leaf values row-major, or throws NestedShapeMismatch naming where (index path) it
 * breaks: a level of another length, a null inner list, or a null item.
 */
export function flattenNestedFixed(cell: unknown, shape: readonly number[]): unknown[] {
  const per = shape.reduce((a, b) => a * b, 1);
  const out = new Array<unknown>(per);
  let filled = 0;
  const where = (idx: readonly number[]): string => (idx.length === 0 ? 'the row' : `item [${idx.join('][')}]`);
  const idx: number[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (v === null || v === undefined) {
      throw new NestedShapeMismatch(`${where(idx)} is a null list; shape [${shape.join(', ')}] needs ${shape[depth]} items there`);
    }
    if (!Array.isArray(v) && !(ArrayBuffer.isView(v) && !(v instanceof DataView))) {
      throw new NestedShapeMismatch(`${where(idx)} is not a list; shape [${shape.join(', ')}] needs a list of ${shape[depth]} there`);
    }
    const arr = v as ArrayLike<unknown>;
    if (arr.length !== shape[depth]) {
      throw new NestedShapeMismatch(`${where(idx)} has ${arr.length} items, shape [${shape.join(', ')}] needs ${shape[depth]}`);
    }
    if (depth === shape.length - 1) {
      for (let i = 0; i < arr.length; i++) {
        const x = arr[i];
        if (x === null || x === undefined) {
          idx.push(i);
          throw new NestedShapeMismatch(`${where(idx)} is null; fixed-shape columns carry no per-item nulls (fill or drop them)`);
        }
        out[filled++] = x;
      }
      return;
    }
    for (let i = 0; i < arr.length; i++) {
      idx.push(i);
      walk(arr[i], depth + 1);
      idx.pop();
    }
  };
  walk(cell, 0);
  return out;
}
