// Pinned shared-memory slabs: the thin TypeScript face of native/.
export type { AllocOptions, MemoryKind, MemoryStatus, SlabInfo } from './types.js';
export { allocSlab, copySlab, detachSlab, freeSlab, maxSlabBytes, memoryStatus, pageSize, PREAD_RUN_FIELDS, preadIntoSlab, preadRunsIntoBuffer, preadRunsIntoSlab, shortRun, slabInfo, slabView } from './slab.js';
export { addonPath, loadNative, type NativeBinding } from './native.js';
export { copyRunsFromMap, copyRunsFromMapIntoBuffer, defaultReadMode, fileMapStatus, MAP_RUN_FIELDS, mapFile, unmapFile, type FileMap, type FileMapStatus, type MapOptions, type ReadMode } from './file-map.js';
export { CRC32_KINDS, crc32FromMap, nativeCrc32, nativeCrc32Kind, type Crc32Kind } from './map-checksum.js';
