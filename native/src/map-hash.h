// CRC-32 of a byte range of a file mapping, read in place (no copy), under the fault guard: the
// decode workers' piece checks on the mmap read path. A file truncated after it was mapped is a
// GPUFEED_SHARD_CORRUPT error for the call (a fault while hashing, or a file found shorter than
// the range after it), never a SIGBUS; see maps.h for why both checks are needed.
#pragma once
#include <cstdint>

#include "crc32.h"
#include "native-error.h"

namespace gpufeed {

// *out = zlib's crc32 of bytes [offset, offset + length) of file map `map_id`, with `hash` (a
// Crc32Impl). A range outside the mapping is GPUFEED_INVALID_OPTION, checked before any byte is read.
NativeError HashMapRange(unsigned map_id, uint64_t offset, uint64_t length, Crc32Fn hash, uint32_t* out);

}  // namespace gpufeed
