// Globs for prep's and index's inputs, matched by minimatch: `*` and `?` within one path segment,
// `**` across segments, `{a,b}` alternatives, `[abc]` / `[!abc]` classes; dotfiles match (as a
// glob names them), parentheses are literal (no extglobs: `part(1)-*.parquet` is a file name).
// picomatch was the other candidate; it reads `[!a]` as a class holding `!` and `a`, and `(1)` as
// a group, so it would match other files than these patterns name. Node 20 has no fs.glob, so the
// walk is here: from the literal folder prefix, into folders that can still match, real files and
// folders only (no symbolic links), sorted.
import { readdir } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { Minimatch } from 'minimatch';

const OPTIONS = { dot: true, noext: true } as const;

/** Whether an argument is a glob rather than a path (the characters gpufeed's globs use). */
export function hasGlobMagic(pattern: string): boolean {
  return /[*?[{]/.test(pattern);
}

/** A test for whole '/'-separated paths against a '/'-separated glob. */
export function globMatcher(pattern: string): (path: string) => boolean {
  const mm = new Minimatch(pattern, OPTIONS);
  return (path) => mm.match(path);
}

/**
 * Files matching `pattern`, sorted. The walk starts at the longest literal folder prefix, so
 * `data/2024/*.jsonl` reads only `data/2024`, and enters only folders the rest can match.
 */
export async function globFiles(pattern: string): Promise<string[]> {
  const parts = pattern.split(sep).join('/').split('/');
  const literal: string[] = [];
  for (const p of parts.slice(0, -1)) {
    if (hasGlobMagic(p)) break;
    literal.push(p);
  }
  const base = literal.length === 0 ? '.' : literal.join('/') || '/';
  const mm = new Minimatch(parts.slice(literal.length).join('/'), OPTIONS);
  const out: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (mm.match(childRel, true)) await walk(join(dir, e.name), childRel);
      } else if (e.isFile() && mm.match(childRel)) {
        out.push(literal.length === 0 ? childRel : `${base === '/' ? '' : base}/${childRel}`);
      }
    }
  };
  await walk(base, '');
  return out.sort();
}
