// zlib's CRC-32 (polynomial 0x04C11DB7, bit-reflected, pre- and post-inverted), the piece checksum
// gpufeed's manifests record: Crc32(Crc32(0, a), b) == zlib's crc32 of a then b. On x86-64 it folds
// 64, 128 or 256 bytes per step with carry-less multiplies (PCLMULQDQ, or VPCLMULQDQ on AVX2 or AVX-512), at
// memory speed; elsewhere a slice-by-8 table. The implementation is picked once from the CPU.
#pragma once
#include <cstddef>
#include <cstdint>

namespace gpufeed {

using Crc32Fn = uint32_t (*)(uint32_t crc, const uint8_t* p, size_t n);

enum class Crc32Kind { kAuto = 0, kTable = 1, kPclmul = 2, kAvx512 = 3, kAvx2 = 4 };

// The implementation of `kind` (kAuto: the fastest this CPU runs), or nullptr when this CPU or
// build has no such implementation. Pure functions: safe under RunGuarded (no lock, no allocation).
Crc32Fn Crc32Impl(Crc32Kind kind);

// Name of the implementation kAuto picks: "avx512-vpclmul", "avx2-vpclmul", "pclmul" or "table".
const char* Crc32AutoName();

}  // namespace gpufeed
