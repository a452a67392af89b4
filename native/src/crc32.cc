#include "crc32.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GPUFEED_CRC32_X86 1
#endif

namespace gpufeed {

namespace {

constexpr uint32_t kPoly = 0xEDB88320u;  // 0x04C11DB7 bit-reflected

// Slice-by-8 tables, built at compile time (nothing to initialise at run time, nothing to race).
constexpr std::array<std::array<uint32_t, 256>, 8> MakeTables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ ((c & 1) ? kPoly : 0);
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}
constexpr auto kTables = MakeTables();

// The CRC register without the inversions: `state` is the running remainder.
uint32_t RawTable(uint32_t state, const uint8_t* p, size_t n) {
  while (n >= 8) {
    uint32_t lo, hi;
    memcpy(&lo, p, 4);
    memcpy(&hi, p + 4, 4);
    lo ^= state;
    state = kTables[7][lo & 0xff] ^ kTables[6][(lo >> 8) & 0xff] ^ kTables[5][(lo >> 16) & 0xff] ^ kTables[4][lo >> 24] ^
            kTables[3][hi & 0xff] ^ kTables[2][(hi >> 8) & 0xff] ^ kTables[1][(hi >> 16) & 0xff] ^ kTables[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) state = (state >> 8) ^ kTables[0][(state ^ *p++) & 0xff];
  return state;
}

uint32_t Crc32Table(uint32_t crc, const uint8_t* p, size_t n) { return ~RawTable(~crc, p, n); }

#ifdef GPUFEED_CRC32_X86
// Folding (after Gopal et al., "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ"):
// a 16-byte lane X, loaded little-endian, stands for a 128-bit polynomial whose low quadword holds
// the higher-degree half. Moving X forward by D bits is X * x^D mod P, which for the reflected
// CRC is clmul(X.lo, K(D + 32)) ^ clmul(X.hi, K(D - 32)) with K(n) = (x^n mod P) bit-reflected in
// 32 bits and shifted left by one (a 33-bit operand, so the 96-bit product lands where the
// lane D bits later sits). Each constant below is {K(D + 32), K(D - 32)} for the D it names,
// computed from that formula; test/unit/native-crc32.test.ts checks every path against zlib.
// The last 16-byte lane and the bytes after it go through the table (X is then a message whose
// remainder so far is zero).
constexpr uint64_t kK2080 = 0x11542778a, kK2016 = 0x1322d1430;  // D = 2048 (256 bytes)
constexpr uint64_t kK1568 = 0x1821d8bc0, kK1504 = 0x12e958ac4;  // D = 1536
constexpr uint64_t kK1056 = 0x1e88ef372, kK992 = 0x14a7fe880;   // D = 1024
constexpr uint64_t kK544 = 0x154442bd4, kK480 = 0x1c6e41596;    // D = 512 (64 bytes)
constexpr uint64_t kK416 = 0x3db1ecdc, kK352 = 0x174359406;     // D = 384
constexpr uint64_t kK288 = 0xf1da05aa, kK224 = 0x15a546366;     // D = 256
constexpr uint64_t kK160 = 0x1751997d0, kK96 = 0xccaa009e;      // D = 128 (16 bytes)

#define GPUFEED_PCLMUL_TARGET __attribute__((target("pclmul,sse4.1")))
#define GPUFEED_AVX512_TARGET __attribute__((target("avx512f,avx512vl,vpclmulqdq,pclmul,sse4.1")))
#define GPUFEED_AVX2_TARGET __attribute__((target("avx2,vpclmulqdq,pclmul,sse4.1")))

GPUFEED_PCLMUL_TARGET inline __m128i Fold128(__m128i x, __m128i k) {
  return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

GPUFEED_PCLMUL_TARGET inline __m128i Load128(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// One lane X and the `n` bytes after it, to the final (inverted) CRC; then 16-byte steps of
// `p` while they last, and the table for the rest.
GPUFEED_PCLMUL_TARGET uint32_t FinishLane(__m128i x, const uint8_t* p, size_t n) {
  const __m128i k128 = _mm_set_epi64x(kK96, kK160);
  while (n >= 16) {
    x = _mm_xor_si128(Fold128(x, k128), Load128(p));
    p += 16;
    n -= 16;
  }
  alignas(16) uint8_t lane[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(lane), x);
  return ~RawTable(RawTable(0, lane, 16), p, n);
}

GPUFEED_PCLMUL_TARGET uint32_t Crc32Pclmul(uint32_t crc, const uint8_t* p, size_t n) {
  if (n < 64) return Crc32Table(crc, p, n);
  // The running remainder goes into the first four bytes of the message.
  __m128i x0 = _mm_xor_si128(Load128(p), _mm_cvtsi32_si128(static_cast<int>(~crc)));
  __m128i x1 = Load128(p + 16), x2 = Load128(p + 32), x3 = Load128(p + 48);
  p += 64;
  n -= 64;
  const __m128i k512 = _mm_set_epi64x(kK480, kK544);
  while (n >= 64) {
    x0 = _mm_xor_si128(Fold128(x0, k512), Load128(p));
    x1 = _mm_xor_si128(Fold128(x1, k512), Load128(p + 16));
    x2 = _mm_xor_si128(Fold128(x2, k512), Load128(p + 32));
    x3 = _mm_xor_si128(Fold128(x3, k512), Load128(p + 48));
    p += 64;
    n -= 64;
  }
  __m128i x = _mm_xor_si128(x3, Fold128(x0, _mm_set_epi64x(kK352, kK416)));
  x = _mm_xor_si128(x, Fold128(x1, _mm_set_epi64x(kK224, kK288)));
  x = _mm_xor_si128(x, Fold128(x2, _mm_set_epi64x(kK96, kK160)));
  return FinishLane(x, p, n);
}

GPUFEED_AVX512_TARGET inline __m512i Fold512(__m512i x, __m512i k, __m512i next) {
  // xor of the two products and the next block in one instruction (truth table 0x96: a ^ b ^ c).
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11), next, 0x96);
}

GPUFEED_AVX512_TARGET inline __m512i Load512(const uint8_t* p) { return _mm512_loadu_si512(reinterpret_cast<const void*>(p)); }

GPUFEED_AVX512_TARGET inline __m512i Broadcast(uint64_t lo, uint64_t hi) {
  long long l = static_cast<long long>(lo), h = static_cast<long long>(hi);
  return _mm512_set_epi64(h, l, h, l, h, l, h, l);
}

GPUFEED_AVX512_TARGET uint32_t Crc32Avx512(uint32_t crc, const uint8_t* p, size_t n) {
  if (n < 256) return Crc32Pclmul(crc, p, n);
  __m512i first = _mm512_inserti32x4(_mm512_setzero_si512(), _mm_cvtsi32_si128(static_cast<int>(~crc)), 0);
  __m512i x0 = _mm512_xor_si512(Load512(p), first);
  __m512i x1 = Load512(p + 64), x2 = Load512(p + 128), x3 = Load512(p + 192);
  p += 256;
  n -= 256;
  const __m512i k2048 = Broadcast(kK2080, kK2016);
  while (n >= 256) {
    x0 = Fold512(x0, k2048, Load512(p));
    x1 = Fold512(x1, k2048, Load512(p + 64));
    x2 = Fold512(x2, k2048, Load512(p + 128));
    x3 = Fold512(x3, k2048, Load512(p + 192));
    p += 256;
    n -= 256;
  }
  // Four registers into one (each of its four lanes moves by the same distance), then 64-byte steps.
  __m512i x = Fold512(x0, Broadcast(kK1568, kK1504), x3);
  x = Fold512(x1, Broadcast(kK1056, kK992), x);
  x = Fold512(x2, Broadcast(kK544, kK480), x);
  const __m512i k512 = Broadcast(kK544, kK480);
  while (n >= 64) {
    x = Fold512(x, k512, Load512(p));
    p += 64;
    n -= 64;
  }
  // Four lanes into the last: lane i moves by (3 - i) * 128 bits.
  alignas(64) __m128i lanes[4];
  _mm512_store_si512(reinterpret_cast<void*>(lanes), x);
  __m128i r = lanes[3];
  r = _mm_xor_si128(r, Fold128(lanes[0], _mm_set_epi64x(kK352, kK416)));
  r = _mm_xor_si128(r, Fold128(lanes[1], _mm_set_epi64x(kK224, kK288)));
  r = _mm_xor_si128(r, Fold128(lanes[2], _mm_set_epi64x(kK96, kK160)));
  return FinishLane(r, p, n);
}

// 256-bit VPCLMULQDQ without AVX-512 (AMD Zen 3, Intel Alder Lake and later client cores): each
// register holds two 16-byte lanes, folded together, so a step takes 128 bytes in four registers
// and runs at memory speed where the 16-byte path is bound by its multiplies.
GPUFEED_AVX2_TARGET inline __m256i Fold256(__m256i x, __m256i k) {
  return _mm256_xor_si256(_mm256_clmulepi64_epi128(x, k, 0x00), _mm256_clmulepi64_epi128(x, k, 0x11));
}

GPUFEED_AVX2_TARGET inline __m256i Load256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

GPUFEED_AVX2_TARGET inline __m256i Broadcast256(uint64_t lo, uint64_t hi) {
  long long l = static_cast<long long>(lo), h = static_cast<long long>(hi);
  return _mm256_set_epi64x(h, l, h, l);
}

GPUFEED_AVX2_TARGET uint32_t Crc32Avx2(uint32_t crc, const uint8_t* p, size_t n) {
  if (n < 128) return Crc32Pclmul(crc, p, n);
  __m256i x0 = _mm256_xor_si256(Load256(p), _mm256_setr_epi32(static_cast<int>(~crc), 0, 0, 0, 0, 0, 0, 0));
  __m256i x1 = Load256(p + 32), x2 = Load256(p + 64), x3 = Load256(p + 96);
  p += 128;
  n -= 128;
  const __m256i k1024 = Broadcast256(kK1056, kK992);
  while (n >= 128) {
    x0 = _mm256_xor_si256(Fold256(x0, k1024), Load256(p));
    x1 = _mm256_xor_si256(Fold256(x1, k1024), Load256(p + 32));
    x2 = _mm256_xor_si256(Fold256(x2, k1024), Load256(p + 64));
    x3 = _mm256_xor_si256(Fold256(x3, k1024), Load256(p + 96));
    p += 128;
    n -= 128;
  }
  // Four registers into one, each 32 bytes after the last, then 32-byte steps.
  const __m256i k256 = Broadcast256(kK288, kK224);
  __m256i x = _mm256_xor_si256(Fold256(x0, k256), x1);
  x = _mm256_xor_si256(Fold256(x, k256), x2);
  x = _mm256_xor_si256(Fold256(x, k256), x3);
  while (n >= 32) {
    x = _mm256_xor_si256(Fold256(x, k256), Load256(p));
    p += 32;
    n -= 32;
  }
  // The low lane moves 16 bytes onto the high one.
  __m128i r = _mm_xor_si128(_mm256_extracti128_si256(x, 1), Fold128(_mm256_castsi256_si128(x), _mm_set_epi64x(kK96, kK160)));
  return FinishLane(r, p, n);
}

bool HasPclmul() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}
bool HasAvx2() { return HasPclmul() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("vpclmulqdq"); }
bool HasAvx512() { return HasPclmul() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vpclmulqdq"); }
#endif

}  // namespace

Crc32Fn Crc32Impl(Crc32Kind kind) {
  switch (kind) {
    case Crc32Kind::kTable:
      return &Crc32Table;
#ifdef GPUFEED_CRC32_X86
    case Crc32Kind::kPclmul:
      return HasPclmul() ? &Crc32Pclmul : nullptr;
    case Crc32Kind::kAvx512:
      return HasAvx512() ? &Crc32Avx512 : nullptr;
    case Crc32Kind::kAvx2:
      return HasAvx2() ? &Crc32Avx2 : nullptr;
    case Crc32Kind::kAuto:
      return HasAvx512() ? &Crc32Avx512 : HasAvx2() ? &Crc32Avx2 : HasPclmul() ? &Crc32Pclmul : &Crc32Table;
#else
    case Crc32Kind::kAuto:
      return &Crc32Table;
#endif
    default:
      return nullptr;
  }
}

const char* Crc32AutoName() {
  Crc32Fn f = Crc32Impl(Crc32Kind::kAuto);
#ifdef GPUFEED_CRC32_X86
  if (f == &Crc32Avx512) return "avx512-vpclmul";
  if (f == &Crc32Avx2) return "avx2-vpclmul";
  if (f == &Crc32Pclmul) return "pclmul";
#endif
  (void)f;
  return "table";
}

}  // namespace gpufeed
