// How the CLI ends when things go wrong outside gpufeed: a reader that closes the pipe early,
// stdout on a full device, usage mistakes, an output path that cannot be created. Each is a
// clean status (0, or 2 with `gpufeed: error CODE`), never a stack trace or status 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { prepDataset } from '../../src/dataset/prep.js';
import { ROOT, runCli } from '../fixtures/run-cli.js';
import { tempDir, writeJsonl } from '../fixtures/dataset-fixtures.js';
import { cliArgv } from '../helpers/cli-command.js';

async function dataset(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const dir = await tempDir(t);
  const rows = Array.from({ length: 6000 }, (_, i) => ({ x: i, s: `row ${i} ${'y'.repeat(40)}` }));
  const input = await writeJsonl(join(dir, 'in.jsonl'), rows);
  await prepDataset([input], { out: join(dir, 'ds'), shardSize: '64KiB', workers: 0, progress: false });
  return join(dir, 'ds');
}

interface EarlyClose {
  code: number | null;
  signal: NodeJS.Signals | null;
  firstLine: string;
  stderr: string;
}

/** Runs the CLI, reads its first stdout line, then closes the pipe (like `| head -1`). */
function firstLineThenClose(args: string[], stdoutTo: 'pipe' | number = 'pipe'): Promise<EarlyClose> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cliArgv(), ...args], { cwd: ROOT, stdio: ['ignore', stdoutTo, 'pipe'] });
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    let out = '';
    let firstLine = '';
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0 && !firstLine) {
        firstLine = out.slice(0, nl);
        child.stdout!.destroy();
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, firstLine, stderr });
    });
  });
}

test('dump | head -1 and plan | head -1: status 0, no EPIPE stack', async (t) => {
  const ds = await dataset(t);
  // Enough output to overflow a pipe buffer many times over, so writes really hit the closed pipe.
  for (const args of [['plan', ds, '--batch-size', '1'], ['dump', ds, '--batch-size', '2', '--workers', '1']]) {
    const r = await firstLineThenClose(args);
    assert.equal(r.signal, null, `${args[0]}: ${r.stderr}`);
    assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /EPIPE|at .*\(|unexpected error/, `${args[0]} stderr: ${r.stderr}`);
    const line = JSON.parse(r.firstLine) as { step: number; ids: number[] };
    assert.equal(line.step, 0);
    assert.ok(line.ids.length > 0);
  }
});

test('stdout on a full device (/dev/full): GPUFEED_IO, status 2', { skip: !existsSync('/dev/full') }, async (t) => {
  const ds = await dataset(t);
  const { openSync, closeSync } = await import('node:fs');
  const fd = openSync('/dev/full', 'w');
  t.after(() => closeSync(fd));
  const r = await firstLineThenClose(['plan', ds, '--batch-size', '1'], fd);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^gpufeed: error GPUFEED_IO: writing standard output: ENOSPC/m);
  assert.doesNotMatch(r.stderr, /at .*\(/);
});

test('usage errors exit 2 in gpufeed\'s format; --help and --version exit 0', async () => {
  const cases: [string[], RegExp][] = [
    [['dump', '--no-such-flag', 'x'], /^gpufeed: error GPUFEED_INVALID_OPTION: unknown option '--no-such-flag'/m],
    [['dump'], /^gpufeed: error GPUFEED_INVALID_OPTION: missing required argument 'dataset'/m],
    [['no-such-command'], /^gpufeed: error GPUFEED_INVALID_OPTION: unknown command 'no-such-command'/m],
    [[], /Usage: gpufeed/],
  ];
  // Independent children, all at once; each result is checked on its own.
  const [help, version, dumpHelp, ...usage] = await Promise.all([['--help'], ['--version'], ['dump', '--help'], ...cases.map(([args]) => args)].map((args) => runCli(args)));
  cases.forEach(([args, stderr], i) => {
    const r = usage[i]!;
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, stderr);
  });
  assert.equal(help!.code, 0);
  assert.match(help!.stdout, /Usage: gpufeed/);
  assert.equal(version!.code, 0);
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(version!.stdout.trim(), pkg.version);
  assert.equal(dumpHelp!.code, 0);
});

test('prep --out under a plain file, and --state-out under one: GPUFEED_IO naming the path, status 2', async (t) => {
  const dir = await tempDir(t);
  const input = await writeJsonl(join(dir, 'in.jsonl'), [{ a: 1 }, { a: 2 }]);
  await writeFile(join(dir, 'somefile'), 'keep me');
  const r = await runCli(['prep', input, '--out', join(dir, 'somefile', 'ds')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^gpufeed: error GPUFEED_IO: creating folder .*somefile\/ds\/shards: a component of the path is not a directory \(ENOTDIR\)/m);
  assert.doesNotMatch(r.stderr, /at .*\(/);
  assert.equal(await readFile(join(dir, 'somefile'), 'utf8'), 'keep me');

  await runCli(['prep', input, '--out', join(dir, 'ds')]).then((ok) => assert.equal(ok.code, 0, ok.stderr));
  const s = await runCli(['plan', join(dir, 'ds'), '--batch-size', '1', '--state-out', join(dir, 'somefile', 'state.json')]);
  assert.equal(s.code, 2, s.stderr);
  assert.match(s.stderr, /^gpufeed: error GPUFEED_IO: .*somefile\/state\.json.*ENOTDIR/m);
});
