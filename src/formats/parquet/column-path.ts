// Where a top-level column's leaf sits in a Parquet schema and what its levels mean: the maximum
// definition and repetition levels, and for a list the levels that mark a null row and an empty
// list. Computed from the flat schema (root first, depth-first, num_children per group).
import type { SchemaElement } from 'hyparquet';

export interface LeafPath {
  /** The leaf's schema element. */
  leaf: SchemaElement;
  /** Path names from the top-level field to the leaf (path_in_schema). */
  names: string[];
  maxDef: number;
  maxRep: number;
  /** Definition level below which the row itself is null (0 when the field is required). */
  rowDef: number;
  /** Lists: definition level from which an element is present (below it, an empty list). */
  elementDef: number;
}

/** The single leaf under top-level field `name`, or undefined when it has several or none. */
export function leafPath(schema: readonly SchemaElement[], name: string): LeafPath | undefined {
  const root = schema[0];
  if (!root) return undefined;
  let i = 1;
  const skip = (at: number): number => {
    let next = at + 1;
    for (let k = 0; k < (schema[at]?.num_children ?? 0); k++) next = skip(next);
    return next;
  };
  for (let k = 0; k < (root.num_children ?? 0); k++) {
    const el = schema[i];
    if (!el) return undefined;
    if (el.name !== name) {
      i = skip(i);
      continue;
    }
    const names: string[] = [];
    let def = 0;
    let rep = 0;
    let rowDef = 0;
    let elementDef = 0;
    let at = i;
    for (let depth = 0; ; depth++) {
      const node = schema[at];
      if (!node || depth > 16) return undefined;
      names.push(node.name);
      if (node.repetition_type === 'OPTIONAL') def++;
      if (node.repetition_type === 'REPEATED') {
        def++;
        rep++;
        elementDef = def;
      }
      if (depth === 0) rowDef = def;
      const children = node.num_children ?? 0;
      if (children === 0) return { leaf: node, names, maxDef: def, maxRep: rep, rowDef, elementDef };
      if (children !== 1) return undefined;
      at += 1;
    }
  }
  return undefined;
}
