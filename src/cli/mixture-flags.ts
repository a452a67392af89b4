// Mixture flags shared by plan, dump, bench and serve: several datasets, with --weights (shares of
// the epoch), --samples (absolute counts per epoch) or --repeat (upsampling factors), one value per
// dataset, comma-separated, in dataset order.
import type { Command } from 'commander';
import { invalidOption } from '../errors.js';
import type { MixtureInput } from '../pipeline/mixture-source.js';
import type { MixtureChange } from '../plan/index.js';

export interface MixtureFlags {
  weights?: string;
  samples?: string;
  repeat?: string;
  epochSamples?: string;
  mixtureChange?: string;
}

export function addMixtureOptions(cmd: Command): Command {
  return cmd
    .option('--weights <w,...>', 'mixture of several datasets: each one\'s share of an epoch, e.g. 0.7,0.2,0.1 (normalized)')
    .option('--samples <n,...>', 'mixture: each dataset\'s samples per epoch (absolute counts)')
    .option('--repeat <x,...>', 'mixture: each dataset\'s upsampling factor (round(x * rows) samples per epoch)')
    .option('--epoch-samples <n>', 'weighted mixture: samples per epoch over all datasets (default: their rows)')
    .option('--mixture-change <what>', 'resuming a state of another mixture: refuse (default) or next-epoch (the new mixture from the next epoch)');
}

function numbers(flag: string, text: string, count: number, integer: boolean): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const values = parts.map((s) => (/^\d+(\.\d*)?(e[+-]?\d+)?$|^\.\d+$/i.test(s) ? Number(s) : Number.NaN));
  values.forEach((v, i) => {
    if (!Number.isFinite(v) || v < 0 || (integer && !Number.isSafeInteger(v))) {
      throw invalidOption(flag, `value ${i + 1} must be a non-negative ${integer ? 'integer' : 'number'}, got ${JSON.stringify(parts[i])}`);
    }
  });
  if (values.length !== count) throw invalidOption(flag, `needs one value per dataset: ${count} datasets, ${values.length} values (${text})`);
  return values;
}

/** One dataset URI as given, or the streams of a mixture. */
export function datasetInputFrom(datasets: readonly string[], flags: MixtureFlags): string | MixtureInput[] {
  const given = (['weights', 'samples', 'repeat'] as const).filter((f) => flags[f] !== undefined);
  if (given.length > 1) throw invalidOption(`--${given[1]}`, `cannot be combined with --${given[0]}: give one of --weights, --samples, --repeat`);
  if (datasets.length === 0) throw invalidOption('dataset', 'is required');
  if (datasets.length === 1 && given.length === 0) {
    if (flags.epochSamples !== undefined) throw invalidOption('--epoch-samples', 'applies to a weighted mixture (several datasets with --weights)');
    return datasets[0] as string;
  }
  const which = given[0];
  const values = which === undefined ? undefined : numbers(`--${which}`, flags[which] as string, datasets.length, which === 'samples');
  return datasets.map((uri, k) => {
    const input: MixtureInput = { uri };
    if (values && which === 'weights') input.weight = values[k] as number;
    if (values && which === 'samples') input.samples = values[k] as number;
    if (values && which === 'repeat') input.repeat = values[k] as number;
    return input;
  });
}

export function epochSamplesFrom(flags: MixtureFlags): number | undefined {
  if (flags.epochSamples === undefined) return undefined;
  const n = /^\d+$/.test(flags.epochSamples) ? Number(flags.epochSamples) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw invalidOption('--epoch-samples', `must be a non-negative integer, got ${JSON.stringify(flags.epochSamples)}`);
  return n;
}

export function mixtureChangeFrom(flags: MixtureFlags): MixtureChange | undefined {
  const v = flags.mixtureChange;
  if (v === undefined) return undefined;
  if (v !== 'refuse' && v !== 'next-epoch') throw invalidOption('--mixture-change', `must be refuse or next-epoch, got ${JSON.stringify(v)}`);
  return v;
}

/** The loader options of the mixture flags. */
export function mixtureLoaderOptions(flags: MixtureFlags): { epochSamples?: number; mixtureChange?: MixtureChange } {
  const out: { epochSamples?: number; mixtureChange?: MixtureChange } = {};
  const n = epochSamplesFrom(flags);
  if (n !== undefined) out.epochSamples = n;
  const c = mixtureChangeFrom(flags);
  if (c !== undefined) out.mixtureChange = c;
  return out;
}
