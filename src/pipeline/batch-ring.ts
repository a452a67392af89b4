// A bounded ring of batch slots, one slab each. Slots are recycled: memory is fixed when the
// loader opens and never grows with the dataset. acquire() waits when every slot is in use, which
// is the backpressure that stops decoding from running ahead of the consumer.
import { allocSlab, detachSlab, freeSlab, slabView, type SlabInfo } from '../memory/index.js';
import { ErrorCodes, GpufeedError } from '../errors.js';

export interface Slot {
  index: number;
  slab: SlabInfo;
  buffer: ArrayBuffer;
}

export class BatchRing {
  readonly slots: readonly Slot[];
  readonly slotBytes: number;
  #free: Slot[];
  #waiters: { resolve: (s: Slot) => void; reject: (e: unknown) => void }[] = [];
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
    this.#free = [...slots];
  }

  get freeCount(): number {
    return this.#free.length;
  }

  tryAcquire(): Slot | undefined {
    return this.#closed ? undefined : this.#free.shift();
  }

  acquire(): Promise<Slot> {
    if (this.#closed) return Promise.reject(new GpufeedError(ErrorCodes.CLOSED, 'batch ring is closed'));
    const s = this.#free.shift();
    if (s) return Promise.resolve(s);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  release(slot: Slot): void {
    if (this.#closed) return;
    const w = this.#waiters.shift();
    if (w) w.resolve(slot);
    else this.#free.push(slot);
  }

  /** Frees every slab. No view of a slot may be used afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w.reject(new GpufeedError(ErrorCodes.CLOSED, 'batch ring is closed'));
    for (const s of this.slots) {
      detachSlab(s.slab.id);
      freeSlab(s.slab.id);
    }
  }
}
