// A small glob matcher (Node 20 has no fs.glob): `*` and `?` within one path segment, `**` across
// segments, `{a,b}` alternatives, `[abc]` classes. Enough for `data/**/*.jsonl` style inputs.
import { readdir } from 'node:fs/promises';
import { join, sep } from 'node:path';

export function hasGlobMagic(pattern: string): boolean {
  return /[*?[{]/.test(pattern);
}

/** Compiles a '/'-separated glob into a RegExp matching whole '/'-separated paths. */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  let i = 0;
  let braceDepth = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        // `**/` matches zero or more whole segments; a bare `**` matches anything.
        if (pattern[i + 2] === '/') {
          re += '(?:[^/]*/)*';
          i += 3;
        } else {
          re += '.*';
          i += 2;
        }
        continue;
      }
      re += '[^/]*';
    } else if (c === '?') {
      re += '[^/]';
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        let body = pattern.slice(i + 1, end);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '{') {
      braceDepth++;
      re += '(?:';
    } else if (c === '}' && braceDepth > 0) {
      braceDepth--;
      re += ')';
    } else if (c === ',' && braceDepth > 0) {
      re += '|';
    } else {
      re += c.replace(/[.+^$()|\\]/g, '\\$&');
    }
    i++;
  }
  return new RegExp(`^${re}$`);
}

/**
 * Files matching `pattern`, sorted. The walk starts at the longest literal directory prefix, so
 * `data/2024/*.jsonl` reads only `data/2024`.
 */
export async function globFiles(pattern: string): Promise<string[]> {
  const norm = pattern.split(sep).join('/');
  const parts = norm.split('/');
  const literal: string[] = [];
  for (const p of parts.slice(0, -1)) {
    if (hasGlobMagic(p)) break;
    literal.push(p);
  }
  const base = literal.length === 0 ? '.' : literal.join('/') || '/';
  const rest = parts.slice(literal.length).join('/');
  const matcher = globToRegExp(rest);
  const deep = rest.includes('**') || rest.split('/').length > 1;
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
      const full = join(dir, e.name);
      if (e.isDirectory()) {
        if (deep) await walk(full, childRel);
      } else if (e.isFile() && matcher.test(childRel)) {
        out.push(literal.length === 0 ? childRel : `${base === '/' ? '' : base}/${childRel}`);
      }
    }
  };
  await walk(base, '');
  return out.sort();
}
