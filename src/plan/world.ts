// Rank arithmetic for one process of a distributed job, from options or from the environment a
// launcher sets. gpufeed runs no coordinator: every rank derives the same facts on its own.
import { ErrorCodes, GpufeedError, invalidOption } from '../errors.js';

export interface World {
  /** Global rank of this process, 0 <= rank < worldSize. */
  rank: number;
  /** Number of processes in the job. */
  worldSize: number;
  /** Rank of this process on its node, 0 <= localRank < localWorldSize. */
  localRank: number;
  /** Processes per node; worldSize is a multiple of it. */
  localWorldSize: number;
}

type Field = keyof World;

/** Launcher variables per field, torchrun first: torchrun under Slurm sets both, and its are the truth. */
const TORCHRUN: Record<Field, string> = {
  rank: 'RANK',
  worldSize: 'WORLD_SIZE',
  localRank: 'LOCAL_RANK',
  localWorldSize: 'LOCAL_WORLD_SIZE',
};
const SLURM: Record<Field, string> = {
  rank: 'SLURM_PROCID',
  worldSize: 'SLURM_NTASKS',
  localRank: 'SLURM_LOCALID',
  localWorldSize: 'SLURM_NTASKS_PER_NODE',
};

const FIELDS: readonly Field[] = ['rank', 'worldSize', 'localRank', 'localWorldSize'];

interface Sourced {
  value: number;
  /** How the value is named in errors: `option rank`, `RANK=3`, `default`. */
  source: string;
}

/**
 * Resolves this process's place in the job. Each field comes from `opts` if given, else from the
 * launcher's environment: torchrun's RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE if any of them
 * is set, else Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE if
 * SLURM_PROCID is set, else a single process (0 of 1, one per node). Inconsistent values throw
 * GPUFEED_WORLD_INVALID naming where each value came from.
 */
export function resolveWorld(opts: Partial<World> = {}, env: NodeJS.ProcessEnv = process.env): World {
  const launcher = pickLauncher(env);
  const got: Partial<Record<Field, Sourced>> = {};
  for (const field of FIELDS) {
    const fromOption = opts[field];
    if (fromOption !== undefined) {
      if (typeof fromOption !== 'number' || !Number.isSafeInteger(fromOption) || fromOption < 0) {
        throw invalidOption(field, `must be a non-negative integer, got ${String(fromOption)}`);
      }
      got[field] = { value: fromOption, source: `option ${field}=${fromOption}` };
      continue;
    }
    if (!launcher) continue;
    const name = launcher[field];
    let raw = env[name];
    if (raw === undefined && field === 'localWorldSize' && launcher === SLURM) {
      raw = uniformSlurmTasksPerNode(env.SLURM_TASKS_PER_NODE);
    }
    if (raw === undefined || raw === '') continue;
    got[field] = { value: parseEnvInt(name, raw), source: `${name}=${raw.trim()}` };
  }

  const { rank, worldSize } = got;
  if ((rank === undefined) !== (worldSize === undefined)) {
    const present = (rank ?? worldSize) as Sourced;
    const missing = rank === undefined ? nameOf('rank', launcher) : nameOf('worldSize', launcher);
    throw worldError(`${present.source} is set but ${missing} is not`, { given: present.source, missing });
  }
  const world: Record<Field, Sourced> = {
    rank: rank ?? { value: 0, source: 'default rank=0' },
    worldSize: worldSize ?? { value: 1, source: 'default worldSize=1' },
    localRank: got.localRank ?? { value: 0, source: 'default localRank=0' },
    localWorldSize: got.localWorldSize ?? { value: 1, source: 'default localWorldSize=1' },
  };
  checkConsistent(world);
  return {
    rank: world.rank.value,
    worldSize: world.worldSize.value,
    localRank: world.localRank.value,
    localWorldSize: world.localWorldSize.value,
  };
}

/** Number of nodes, assuming the same number of processes on each (as torchrun and Slurm place them). */
export function nodeCount(world: World): number {
  return world.worldSize / world.localWorldSize;
}

function pickLauncher(env: NodeJS.ProcessEnv): Record<Field, string> | undefined {
  if (FIELDS.some((f) => env[TORCHRUN[f]] !== undefined && env[TORCHRUN[f]] !== '')) return TORCHRUN;
  if (env.SLURM_PROCID !== undefined && env.SLURM_PROCID !== '') return SLURM;
  return undefined;
}

function nameOf(field: Field, launcher: Record<Field, string> | undefined): string {
  return launcher ? `${launcher[field]} (or option ${field})` : `option ${field}`;
}

function parseEnvInt(name: string, raw: string): number {
  const text = raw.trim();
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw worldError(`${name}=${JSON.stringify(raw)} is not a non-negative integer`, { variable: name, value: raw });
  }
  return Number(text);
}

/** SLURM_TASKS_PER_NODE looks like `4`, `4(x2)` or `4(x2),3`; only a uniform count is usable. */
function uniformSlurmTasksPerNode(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const counts = new Set(raw.split(',').map((part) => part.trim().replace(/\(x\d+\)$/, '')));
  return counts.size === 1 ? [...counts][0] : undefined;
}

function checkConsistent(w: Record<Field, Sourced>): void {
  const { rank, worldSize, localRank, localWorldSize } = w;
  const fail = (message: string): never => {
    throw worldError(message, {
      rank: rank.source, worldSize: worldSize.source, localRank: localRank.source, localWorldSize: localWorldSize.source,
    });
  };
  if (worldSize.value < 1) fail(`world size must be at least 1 (${worldSize.source})`);
  if (rank.value >= worldSize.value) fail(`rank must be below the world size (${rank.source}, ${worldSize.source})`);
  if (localWorldSize.value < 1) fail(`local world size must be at least 1 (${localWorldSize.source})`);
  if (localRank.value >= localWorldSize.value) {
    fail(`local rank must be below the local world size (${localRank.source}, ${localWorldSize.source})`);
  }
  if (worldSize.value % localWorldSize.value !== 0) {
    fail(`world size must be a multiple of the local world size (${worldSize.source}, ${localWorldSize.source})`);
  }
}

function worldError(message: string, details: Record<string, unknown>): GpufeedError {
  return new GpufeedError(ErrorCodes.WORLD_INVALID, `inconsistent world: ${message}`, details);
}
