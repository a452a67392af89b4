// `--columns a,b` / `--drop c`: which columns of the input a dataset keeps. Kept columns stay in
// the input's order; a name the input lacks is GPUFEED_UNKNOWN_COLUMN naming every such name.
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';

export interface ColumnSelection {
  /** Only these columns (in the input's order). */
  columns?: string[];
  /** Every column but these. */
  drop?: string[];
}

/** `a,b` (repeatable flags joined) -> names; empty names refused. */
export function parseColumnList(values: readonly string[] | undefined, option: string): string[] | undefined {
  if (values === undefined) return undefined;
  const names = values.flatMap((v) => v.split(',')).map((s) => s.trim());
  if (names.length === 0 || names.some((n) => n.length === 0)) {
    throw invalidOption(option, `expected comma-separated column names such as a,b, got ${JSON.stringify(values.join(','))}`);
  }
  return [...new Set(names)];
}

export function checkColumnSelection(sel: ColumnSelection): void {
  if (sel.columns !== undefined && sel.drop !== undefined) {
    const both = sel.columns.filter((c) => sel.drop!.includes(c));
    if (both.length > 0) throw invalidOption('drop', `column${both.length === 1 ? '' : 's'} ${both.join(', ')} given to both --columns and --drop`);
  }
  if (sel.columns !== undefined && sel.columns.length === 0) throw invalidOption('columns', 'names no column');
}

export function isSelecting(sel: ColumnSelection | undefined): boolean {
  return sel !== undefined && (sel.columns !== undefined || sel.drop !== undefined);
}

/**
 * The names kept out of `available` (the input's columns, in order). `where` names the input.
 * Throws UNKNOWN_COLUMN for names not in `available`, INVALID_OPTION when nothing is left.
 */
export function selectColumnNames(available: readonly string[], sel: ColumnSelection, where: string): string[] {
  checkColumnSelection(sel);
  const have = new Set(available);
  const asked = [...(sel.columns ?? []), ...(sel.drop ?? [])];
  const unknown = asked.filter((n) => !have.has(n));
  if (unknown.length > 0) {
    throw new GpufeedError(ErrorCodes.UNKNOWN_COLUMN, `${where}: no column${unknown.length === 1 ? '' : 's'} ${unknown.map((n) => JSON.stringify(n)).join(', ')} (columns: ${available.join(', ')})`, {
      path: where, column: unknown[0], columns: unknown,
    });
  }
  const keep = sel.columns ? new Set(sel.columns) : undefined;
  const drop = new Set(sel.drop ?? []);
  const kept = available.filter((n) => (keep ? keep.has(n) : true) && !drop.has(n));
  if (kept.length === 0) throw invalidOption('drop', `${where}: the selection leaves no column (columns: ${available.join(', ')})`);
  return kept;
}
