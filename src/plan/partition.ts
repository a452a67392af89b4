// How one epoch's samples are laid out over canonical partitions and global batches. None of this
// depends on the world size, only on (samples N, global batch G, partitions P, dropLast), which is
// what lets another world size continue an epoch exactly.
//
// Each global batch of G positions is cut into P contiguous runs: position j belongs to partition
// floor(j*P/G), and partition p owns positions [C_p, C_{p+1}) with C_p = ceil(p*G/P), c_p of them.
// Rank r takes positions [r*B, (r+1)*B); when P is a multiple of W those are exactly the runs of
// partitions [r*P/W, (r+1)*P/W), and when W is a multiple of P they lie inside partition
// floor(r*P/W), so a rank reads only its own partitions' samples.
//
// Partition p owns a contiguous range of global ids sized so that it is used up at its rate of c_p
// per step: m_p ~ steps*c_p. The epoch's remainder (dropLast) or deficit (padding), less than G,
// is shared out in proportion to c_p, so no partition pads or drops more than c_p samples.

export interface EpochLayout {
  /** Samples in the dataset (N). */
  readonly samples: number;
  /** Samples per global step (G = batchSize x worldSize). */
  readonly globalBatch: number;
  readonly partitions: number;
  readonly dropLast: boolean;
  /** Steps in the epoch, the same on every rank. */
  readonly steps: number;
}

export function epochLayout(samples: number, globalBatch: number, partitions: number, dropLast: boolean): EpochLayout {
  const steps = dropLast ? Math.floor(samples / globalBatch) : Math.ceil(samples / globalBatch);
  return { samples, globalBatch, partitions, dropLast, steps };
}

/** C_p: first position of partition p within a global batch (p may be P, giving G). */
export function shareStart(layout: EpochLayout, p: number): number {
  return Math.ceil((p * layout.globalBatch) / layout.partitions);
}

/** c_p: positions of partition p in every global batch (>= 1 since P <= G). */
export function shareSize(layout: EpochLayout, p: number): number {
  return shareStart(layout, p + 1) - shareStart(layout, p);
}

/** The partition a global-batch position belongs to. */
export function partitionOfPosition(layout: EpochLayout, position: number): number {
  return Math.floor((position * layout.partitions) / layout.globalBatch);
}

/** First global sample id of partition p (p may be P, giving N). */
export function partitionStart(layout: EpochLayout, p: number): number {
  const { steps, globalBatch, samples, dropLast } = layout;
  const cp = shareStart(layout, p);
  if (steps === 0) return Math.floor((samples * cp) / globalBatch);
  if (dropLast) {
    const remainder = samples - steps * globalBatch;
    return steps * cp + Math.floor((remainder * cp) / globalBatch);
  }
  const deficit = steps * globalBatch - samples;
  return steps * cp - Math.floor((deficit * cp) / globalBatch);
}

/** m_p: samples owned by partition p. */
export function partitionSize(layout: EpochLayout, p: number): number {
  return partitionStart(layout, p + 1) - partitionStart(layout, p);
}

/** Samples the partition delivers in the epoch (steps x c_p); more than its size means padding. */
export function partitionStreamLength(layout: EpochLayout, p: number): number {
  return layout.steps * shareSize(layout, p);
}
