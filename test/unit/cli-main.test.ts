// The top-level CLI: --help and --version load no subcommand, and what they say of each
// subcommand is what that subcommand registers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command, Help } from 'commander';
import { SUBCOMMANDS, registerSummaries } from '../../src/cli/main.js';

test('the summary table matches every subcommand module: term and description', async () => {
  for (const [name, entry] of Object.entries(SUBCOMMANDS)) {
    const program = new Command('gpufeed');
    (await entry.load()).register(program);
    const cmd = program.commands.find((c) => c.name() === name);
    assert.ok(cmd, `module of ${name} registers no command ${name}`);
    assert.equal(new Help().subcommandTerm(cmd), entry.term, `term of ${name}`);
    assert.equal(cmd.description(), entry.summary, `description of ${name}`);
  }
});

test('top-level help lists every subcommand with its term and summary', () => {
  const program = new Command('gpufeed');
  registerSummaries(program);
  const help = program.helpInformation();
  for (const [name, entry] of Object.entries(SUBCOMMANDS)) {
    assert.ok(help.includes(entry.term), `help lacks ${name}'s term ${entry.term}`);
    assert.ok(help.includes(entry.summary.slice(0, 30)), `help lacks ${name}'s summary`);
  }
});
