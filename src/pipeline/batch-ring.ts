// The batch slots, one slab each, allocated when the loader opens and freed when it closes: memory
// is fixed and never grows with the dataset. Which slot is free, filling, ready or held lives in
// the shared control block (control-block.ts), where the decode workers take and publish slots.
import { allocSlab, detachSlab, freeSlab, slabView, type SlabInfo } from '../memory/index.js';

export interface Slot {
  index: number;
  slab: SlabInfo;
  /** This thread's view of the slab. */
  buffer: ArrayBuffer;
}

export class BatchRing {
  readonly slots: readonly Slot[];
  readonly slotBytes: number;
  #closed = false;

  constructor(count: number, slotBytes: number, options: { pin?: boolean } = {}) {
    const slots: Slot[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const slab = allocSlab(slotBytes, options.pin === undefined ? {} : { pin: options.pin });
        slots.push({ index: i, slab, buffer: slabView(slab.id) });
      }
    } catch (err) {
      for (const s of slots) {
        detachSlab(s.slab.id);
        freeSlab(s.slab.id);
      }
      throw err;
    }
    this.slots = slots;
    this.slotBytes = slotBytes;
  }

  /** Frees every slab. No view of a slot may be used afterwards, in any thread. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.slots) {
      detachSlab(s.slab.id);
      freeSlab(s.slab.id);
    }
  }
}
