// Bounded parallel loop: parallel ranged GETs of one object, multipart parts, files to index.

/** Runs task(0..count-1) with at most `limit` at once; the first failure stops new tasks and is thrown. */
export async function forEachBounded(count: number, limit: number, task: (i: number) => Promise<void>, onFirstError?: () => void): Promise<void> {
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      try {
        await task(i);
      } catch (err) {
        if (!failed) {
          failed = true;
          firstError = err;
          onFirstError?.();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  if (failed) throw firstError;
}

