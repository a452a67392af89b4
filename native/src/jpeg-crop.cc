// See jpeg-crop.h. The resize filter, documented here because the pixels depend on it:
//
//   Separable triangle filter (bilinear), antialiased, center-aligned, as Pillow's BILINEAR and
//   libvips' linear kernel: output pixel i (0 <= i < out) of an axis whose box spans [b0, b1) in
//   decoded pixel coordinates (pixel j covers [j, j + 1)) has center c = b0 + (i + 0.5) * s, with
//   s = (b1 - b0) / out, and takes source pixels j with weight max(0, 1 - |j + 0.5 - c| / f), where
//   f = max(s, 1) (so a reduction averages over the pixels it covers and an enlargement is plain
//   bilinear). Taps outside the box are left out (the box's edge pixels extend, as when the box is
//   cut out first and then resized) and the weights are normalized to sum 1, then rounded to 14-bit
//   fixed point. Rows are filtered first (into uint8, rounded), then columns; every sum is rounded
//   half up and clamped to 0..255. Integer arithmetic only: the same bytes on every machine.
#include "jpeg-crop.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(GPUFEED_NO_SIMD)
#include <immintrin.h>
#endif

#ifdef GPUFEED_HAVE_JPEG
#include <csetjmp>
#include <cstdio>
extern "C" {
#include <jpeglib.h>
#include <jerror.h>
}
#endif

namespace gpufeed {

#ifndef GPUFEED_HAVE_JPEG

bool JpegCropAvailable() { return false; }

JpegCropResult JpegCropResize(const JpegCropRequest&, uint8_t*, size_t) {
  JpegCropResult r;
  r.status = JpegCropStatus::kUnsupported;
  r.message = "built without libjpeg";
  return r;
}

#else

namespace {

constexpr int kBits = 14;
constexpr int32_t kOne = 1 << kBits;
constexpr int32_t kHalf = 1 << (kBits - 1);
// Columns decoded beyond the filter's taps: libjpeg's fancy upsampling of chroma replicates at a
// cropped scanline's edge, so the crop's first and last columns can differ from a whole-image
// decode (with no margin the tests see it); one column inside is already the same bytes, and the
// crop itself starts on an iMCU boundary at or before this. Rows need none: libjpeg-turbo's skip and read keep the upsampler's context
// rows, so a row comes out the same wherever the read starts or stops (the tests check both).
constexpr int kMargin = 2;
constexpr int kRowMargin = 0;
// A larger region is left to the general decoder (libvips streams it; this path holds it whole).
constexpr size_t kMaxRegionBytes = size_t{1} << 28;

// One axis of the resize: for output pixel i, taps start at first[i] (decoded pixel index) and
// take count[i] weights from weights[i * max_taps].
struct Axis {
  std::vector<int32_t> first;
  std::vector<int32_t> count;
  std::vector<int32_t> weights;
  int max_taps = 0;
  int lo = 0;  // smallest first[]
  int hi = 0;  // one past the largest first[i] + count[i]
  // MakeAxis's arguments for the tables above: the eval transform's center box repeats for every
  // image of a size, so the tables are kept for the next call.
  bool made = false;
  double key_b0 = 0, key_b1 = 0;
  int key_lo = 0, key_hi = 0, key_out = 0;
  bool key_shifted = false;
  uint64_t generation = 0;  // counts rebuilds (HTaps records the one it was made from)
};

// `shifted`: some axis of this resize enlarges. libvips (sharp's resize, the reference the tests and
// the bench compare against) then samples every enlarged or unscaled axis through its affine
// transform at b0 + i * s (half an output pixel before the center), and a reduced axis at the
// reduce's centers followed by that same half-pixel shift, i.e. the mean of reduce outputs i - 1
// and i. Both are folded into the one pass here.
// Returns false when `a` already held these tables (nothing recomputed).
bool MakeAxis(double b0, double b1, int clamp_lo, int clamp_hi, int out, bool shifted, Axis* a) {
  if (a->made && a->key_b0 == b0 && a->key_b1 == b1 && a->key_lo == clamp_lo && a->key_hi == clamp_hi && a->key_out == out && a->key_shifted == shifted) return false;
  a->made = true;
  a->key_b0 = b0;
  a->key_b1 = b1;
  a->key_lo = clamp_lo;
  a->key_hi = clamp_hi;
  a->key_out = out;
  a->key_shifted = shifted;
  const double s = (b1 - b0) / out;
  const double f = std::max(s, 1.0);
  const bool reduce = s > 1;
  const bool blend = reduce && shifted;  // reduce, then average with the previous output
  const double support = f;              // triangle support 1, stretched by f
  a->max_taps = static_cast<int>(std::ceil(support)) * 2 + 2 + (blend ? static_cast<int>(std::ceil(s)) + 1 : 0);
  a->first.assign(out, 0);
  a->count.assign(out, 0);
  a->weights.assign(static_cast<size_t>(out) * a->max_taps, 0);
  std::vector<double> w(a->max_taps);
  a->lo = clamp_hi;
  a->hi = clamp_lo;
  // The continuous-coordinate weights of output i (center c): taps [j0, j1), normalized.
  auto taps = [&](double c, int* j0_out, int* j1_out, double* wt) {
    int j0 = std::max(static_cast<int>(std::floor(c - support + 0.5)), clamp_lo);
    int j1 = std::min(static_cast<int>(std::floor(c + support + 0.5)), clamp_hi);
    double sum = 0;
    for (int j = j0; j < j1; j++) {
      const double t = std::fabs((j + 0.5 - c) / f);
      wt[j - j0] = t < 1 ? 1 - t : 0;
      sum += wt[j - j0];
    }
    if (j1 <= j0 || sum <= 0) {
      // The center lies past the clamped range (not for a box inside it): nearest pixel.
      j0 = std::min(std::max(static_cast<int>(std::floor(c)), clamp_lo), clamp_hi - 1);
      j1 = j0 + 1;
      wt[0] = sum = 1;
    }
    for (int j = j0; j < j1; j++) wt[j - j0] /= sum;
    *j0_out = j0;
    *j1_out = j1;
  };
  std::vector<double> wa(a->max_taps + 2), wb(a->max_taps + 2);
  for (int i = 0; i < out; i++) {
    int j0, j1;
    if (!reduce && shifted) {
      taps(b0 + i * s, &j0, &j1, w.data());
    } else if (!blend) {
      taps(b0 + (i + 0.5) * s, &j0, &j1, w.data());
    } else {
      int a0, a1, c0, c1;
      taps(b0 + (std::max(i - 1, 0) + 0.5) * s, &a0, &a1, wa.data());
      taps(b0 + (i + 0.5) * s, &c0, &c1, wb.data());
      j0 = std::min(a0, c0);
      j1 = std::max(a1, c1);
      for (int j = j0; j < j1; j++) w[j - j0] = 0;
      for (int j = a0; j < a1; j++) w[j - j0] += 0.5 * wa[j - a0];
      for (int j = c0; j < c1; j++) w[j - j0] += 0.5 * wb[j - c0];
    }
    const int n = std::min(j1 - j0, a->max_taps);
    a->first[i] = j0;
    a->count[i] = n;
    int32_t* k = &a->weights[static_cast<size_t>(i) * a->max_taps];
    for (int t = 0; t < n; t++) k[t] = static_cast<int32_t>(std::lround(w[t] * kOne));
    a->lo = std::min(a->lo, j0);
    a->hi = std::max(a->hi, j0 + n);
  }
  a->generation++;
  return true;
}

inline uint8_t Clamp8(int32_t v) {
  v >>= kBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// The horizontal filter's taps in the form its SIMD loops read: per output pixel, `groups` groups
// of 4 taps, each group two vectors of 8 int16 weights ([w0 w1 w0 w1 w0 w1 0 0] for its first two
// taps, the same for its last two; taps past count[x] weigh 0), and the byte offset of its first
// tap from the row's column ax.lo. Pixels 2p and 2p + 1 sit side by side (one 256-bit vector per
// group and half: [pixel 2p | pixel 2p + 1]) so that AVX2 takes two pixels per instruction. pmaddwd of a source pixel pair (R0 R1 G0 G1 B0 B1 as int16)
// with such a vector gives the three channels' partial sums as exact int32, so the sums, and the
// bytes, are those of the scalar loop.
struct HTaps {
  int groups = 0;
  uint64_t from = 0;             // the Axis generation these were made from (0: none)
  std::vector<int16_t> w;        // ceil(out / 2) * groups * 32
  // Pixel x's vector of group g, half k (0: taps 0-1, 1: taps 2-3).
  size_t at(int x, int g, int k) const { return ((static_cast<size_t>(x >> 1) * groups + g) * 2 + k) * 16 + (x & 1) * 8; }
  std::vector<int32_t> offset;   // out
  // Bytes a row read may go past the last tap's pixel (zero-weight taps, 16-byte loads). Those
  // bytes can be the region's edge columns, which libjpeg may compute from its uninitialized
  // context rows (why kMargin exists); times a zero weight they leave the sums exact, but
  // valgrind's memcheck, which does not follow the multiply by 0, reports the output bytes as
  // uninitialised on the SIMD paths (GPUFEED_JPEG_SIMD=scalar does not read them).
  size_t slack() const { return static_cast<size_t>(groups) * 12 + 16; }
};

struct Scratch {
  std::vector<uint8_t> region;
  size_t region_room = 0;           // region's bytes for pixels (the rest is read slack)
  std::vector<uint8_t> rows;        // the horizontal-first pass's output
  std::vector<uint8_t> line;        // the vertical-first pass's output, one row
  std::vector<int32_t> acc;
  Axis x, y;
  HTaps h;
};

// Per thread; a decode worker handles one image at a time. Large buffers are not kept.
thread_local Scratch scratch;

struct ErrorManager {
  jpeg_error_mgr pub;
  jmp_buf jump;
  JpegCropStatus status;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void OnError(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  e->status = JpegCropStatus::kBad;
  longjmp(e->jump, 1);
}

void OnMessage(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* e = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  // Truncation is an error (as for libvips with fail-on error); any other warning is left to the
  // general decoder, which decides as it always has.
  e->status = cinfo->err->msg_code == JWRN_JPEG_EOF ? JpegCropStatus::kBad : JpegCropStatus::kUnsupported;
  longjmp(e->jump, 1);
}

// The hot loops are built for AVX2 too, picked at load time (GCC/Clang function multiversioning);
// integer arithmetic, so every version gives the same bytes.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GPUFEED_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define GPUFEED_CLONES
#endif

// acc[q] = kHalf + sum_j rows[j][q] * k[j] for q < n, then clamped into out[q]: one output row of
// the vertical filter (a loop the compiler vectorizes).
template <int T>
inline void VerticalTaps(const uint8_t* const* rows, const int32_t* k, size_t n, uint8_t* __restrict out) {
  // The sum stays in a register across the taps (no accumulator array to load and store).
  const uint8_t* __restrict r[T];
  int32_t w[T];
  for (int j = 0; j < T; j++) {
    r[j] = rows[j];
    w[j] = k[j];
  }
  for (size_t q = 0; q < n; q++) {
    int32_t sum = kHalf;
    for (int j = 0; j < T; j++) sum += r[j][q] * w[j];
    sum >>= kBits;
    out[q] = static_cast<uint8_t>(sum < 0 ? 0 : sum > 255 ? 255 : sum);
  }
}

GPUFEED_CLONES void VerticalRowPortable(const uint8_t* const* rows, const int32_t* k, int taps, size_t n, int32_t* acc, uint8_t* out) {
  switch (taps) {
    case 1: VerticalTaps<1>(rows, k, n, out); return;
    case 2: VerticalTaps<2>(rows, k, n, out); return;
    case 3: VerticalTaps<3>(rows, k, n, out); return;
    case 4: VerticalTaps<4>(rows, k, n, out); return;
    case 5: VerticalTaps<5>(rows, k, n, out); return;
    case 6: VerticalTaps<6>(rows, k, n, out); return;
    case 7: VerticalTaps<7>(rows, k, n, out); return;
    default: break;
  }
  for (size_t q = 0; q < n; q++) acc[q] = kHalf;
  for (int j = 0; j < taps; j++) {
    const uint8_t* t = rows[j];
    const int32_t w = k[j];
    for (size_t q = 0; q < n; q++) acc[q] += t[q] * w;
  }
  for (size_t q = 0; q < n; q++) out[q] = Clamp8(acc[q]);
}


void MakeHTaps(const Axis& a, int out, HTaps* h) {
  int most = 1;
  for (int x = 0; x < out; x++) most = std::max(most, a.count[x]);
  h->groups = (most + 3) / 4;
  h->w.assign(static_cast<size_t>((out + 1) / 2) * h->groups * 32, 0);
  h->offset.resize(out);
  h->from = a.generation;
  for (int x = 0; x < out; x++) {
    h->offset[x] = (a.first[x] - a.lo) * 3;
    const int32_t* k = &a.weights[static_cast<size_t>(x) * a.max_taps];
    for (int t = 0; t < a.count[x]; t++) {
      // Group t / 4; half (t % 4) / 2; element t % 2 of each channel's pair.
      int16_t* v = &h->w[h->at(x, t / 4, (t % 4) / 2)] + (t % 2);
      const int16_t wt = static_cast<int16_t>(k[t]);
      v[0] = wt;
      v[2] = wt;
      v[4] = wt;
    }
  }
}

// Where one row of the horizontal filter goes: interleaved RGB at d[0] + pos * 3, or planar at
// d[c] + pos; pos = x, or out - 1 - x mirrored.
struct HDst {
  uint8_t* d[3];
  bool planar;
  bool flip;
};

// One output pixel, scalar (the tails of the SIMD loop, and CPUs without it): the same integers.
inline void HPixel(const uint8_t* src, const Axis& ax, int x, int out, const HDst& o) {
  const uint8_t* p = src + static_cast<size_t>(ax.first[x] - ax.lo) * 3;
  const int32_t* k = &ax.weights[static_cast<size_t>(x) * ax.max_taps];
  int32_t r = kHalf, g = kHalf, b = kHalf;
  for (int t = 0; t < ax.count[x]; t++, p += 3) {
    r += p[0] * k[t];
    g += p[1] * k[t];
    b += p[2] * k[t];
  }
  const int pos = o.flip ? out - 1 - x : x;
  if (o.planar) {
    o.d[0][pos] = Clamp8(r);
    o.d[1][pos] = Clamp8(g);
    o.d[2][pos] = Clamp8(b);
  } else {
    uint8_t* d = o.d[0] + static_cast<size_t>(pos) * 3;
    d[0] = Clamp8(r);
    d[1] = Clamp8(g);
    d[2] = Clamp8(b);
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(GPUFEED_NO_SIMD)
#define GPUFEED_HROW_SIMD 1

// From [R0 G0 B0 0 R1 G1 B1 0 R2 G2 B2 0 R3 G3 B3 0] (output pixels x..x+3): the pixels
// interleaved or planar, in order or mirrored, in the first 12 bytes.
__attribute__((target("ssse3"))) inline __m128i StoreOrder(const HDst& o) {
  return o.planar ? (o.flip ? _mm_setr_epi8(12, 8, 4, 0, 13, 9, 5, 1, 14, 10, 6, 2, -1, -1, -1, -1) : _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, -1, -1, -1, -1))
                  : (o.flip ? _mm_setr_epi8(12, 13, 14, 8, 9, 10, 4, 5, 6, 0, 1, 2, -1, -1, -1, -1) : _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1));
}

// Writes output pixels x..x+3 (`bytes` as StoreOrder reads them) to o.
__attribute__((target("ssse3"))) inline void Store4(__m128i bytes, __m128i order, int x, int out, const HDst& o) {
  bytes = _mm_shuffle_epi8(bytes, order);
  const int pos = o.flip ? out - 4 - x : x;
  if (o.planar) {
    const uint32_t r = static_cast<uint32_t>(_mm_cvtsi128_si32(bytes));
    const uint32_t g = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_srli_si128(bytes, 4)));
    const uint32_t b = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_srli_si128(bytes, 8)));
    std::memcpy(o.d[0] + pos, &r, 4);
    std::memcpy(o.d[1] + pos, &g, 4);
    std::memcpy(o.d[2] + pos, &b, 4);
  } else {
    uint8_t* d = o.d[0] + static_cast<size_t>(pos) * 3;
    _mm_storel_epi64(reinterpret_cast<__m128i*>(d), bytes);
    const uint32_t last = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_srli_si128(bytes, 8)));
    std::memcpy(d + 8, &last, 4);
  }
}

// Four output pixels per step with SSSE3 (pshufb, pmaddwd); G > 0: groups known at compile time.
template <int G>
__attribute__((target("ssse3"))) void HRowSsse3(const uint8_t* src, const Axis& ax, const HTaps& h, int out, const HDst& o) {
  const int groups = G > 0 ? G : h.groups;
  const __m128i pairs01 = _mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
  const __m128i pairs23 = _mm_setr_epi8(6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
  const __m128i half = _mm_set1_epi32(kHalf);
  const __m128i order = StoreOrder(o);
  const int16_t* wv = h.w.data();
  const int32_t* off = h.offset.data();
  int x = 0;
  for (; x + 4 <= out; x += 4) {
    __m128i acc[4];
    for (int k = 0; k < 4; k++) {
      const uint8_t* p = src + off[x + k];
      __m128i a = half;
      for (int g = 0; g < groups; g++) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 12 * g));
        a = _mm_add_epi32(a, _mm_madd_epi16(_mm_shuffle_epi8(v, pairs01), _mm_loadu_si128(reinterpret_cast<const __m128i*>(wv + h.at(x + k, g, 0)))));
        a = _mm_add_epi32(a, _mm_madd_epi16(_mm_shuffle_epi8(v, pairs23), _mm_loadu_si128(reinterpret_cast<const __m128i*>(wv + h.at(x + k, g, 1)))));
      }
      acc[k] = _mm_srai_epi32(a, kBits);
    }
    // Saturating packs: int32 -> int16 -> uint8 is the clamp to 0..255.
    Store4(_mm_packus_epi16(_mm_packs_epi32(acc[0], acc[1]), _mm_packs_epi32(acc[2], acc[3])), order, x, out, o);
  }
  for (; x < out; x++) HPixel(src, ax, x, out, o);
}

// Two pixels per instruction (one per 128-bit lane); otherwise HRowSsse3.
template <int G>
__attribute__((target("avx2"))) void HRowAvx2(const uint8_t* src, const Axis& ax, const HTaps& h, int out, const HDst& o) {
  const int groups = G > 0 ? G : h.groups;
  const __m256i pairs01 = _mm256_broadcastsi128_si256(_mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1));
  const __m256i pairs23 = _mm256_broadcastsi128_si256(_mm_setr_epi8(6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1));
  const __m256i half = _mm256_set1_epi32(kHalf);
  const __m128i order = StoreOrder(o);
  const __m256i* wv = reinterpret_cast<const __m256i*>(h.w.data());
  const int32_t* off = h.offset.data();
  int x = 0;
  for (; x + 4 <= out; x += 4) {
    __m256i acc[2];
    for (int k = 0; k < 2; k++) {
      // Pixels x + 2k (low lane) and x + 2k + 1 (high lane).
      const uint8_t* p0 = src + off[x + 2 * k];
      const uint8_t* p1 = src + off[x + 2 * k + 1];
      const __m256i* w = wv + static_cast<size_t>((x >> 1) + k) * groups * 2;
      __m256i a = half;
      for (int g = 0; g < groups; g++) {
        const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p0 + 12 * g))),
                                                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1 + 12 * g)), 1);
        a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_shuffle_epi8(v, pairs01), _mm256_loadu_si256(w + 2 * g)));
        a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_shuffle_epi8(v, pairs23), _mm256_loadu_si256(w + 2 * g + 1)));
      }
      acc[k] = _mm256_srai_epi32(a, kBits);
    }
    // Lanes: [x | x+1] and [x+2 | x+3] -> packs: [x, x+2 | x+1, x+3] as int16 -> the lanes
    // interleaved back into [x, x+1, x+2, x+3], 4 bytes each.
    const __m256i p = _mm256_packs_epi32(acc[0], acc[1]);
    const __m128i lo = _mm256_castsi256_si128(p);
    const __m128i hi = _mm256_extracti128_si256(p, 1);
    // lo: [x R G B 0, x+2 R G B 0] int16; hi: the same for x+1, x+3.
    const __m128i b = _mm_packus_epi16(_mm_unpacklo_epi64(lo, hi), _mm_unpackhi_epi64(lo, hi));
    // b: [x, x+1, x+2, x+3] as 4 bytes each.
    Store4(b, order, x, out, o);
  }
  for (; x < out; x++) HPixel(src, ax, x, out, o);
}

// GPUFEED_JPEG_SIMD=scalar / ssse3 caps the choice (tests compare the versions' bytes).
int PickSimd() {
  const char* cap = std::getenv("GPUFEED_JPEG_SIMD");
  const int most = cap == nullptr ? 2 : std::strcmp(cap, "scalar") == 0 ? 0 : std::strcmp(cap, "ssse3") == 0 ? 1 : 2;
  const int have = __builtin_cpu_supports("avx2") ? 2 : __builtin_cpu_supports("ssse3") ? 1 : 0;
  return std::min(most, have);
}
const int kSimd = PickSimd();

// The vertical filter with AVX2, taps in pairs: the bytes of two rows interleaved and widened to
// int16 pairs, pmaddwd with the pair's two weights: 32 outputs of 2 taps in 4 instructions of
// arithmetic, exact int32 sums as the portable loop's. P > 0: pairs known at compile time.
template <int P>
__attribute__((target("avx2"))) void VerticalAvx2(const uint8_t* const* rows, const int32_t* k, int taps, size_t n, uint8_t* out) {
  const int pairs = P > 0 ? P : (taps + 1) / 2;
  const uint8_t* r[128][2];
  __m256i w[128];
  for (int j = 0; j < pairs; j++) {
    const int t0 = 2 * j;
    const int t1 = t0 + 1 < taps ? t0 + 1 : t0;  // an odd last tap pairs with itself, weight 0
    r[j][0] = rows[t0];
    r[j][1] = rows[t1];
    const int32_t w1 = t0 + 1 < taps ? k[t1] : 0;
    w[j] = _mm256_set1_epi32(static_cast<int32_t>((static_cast<uint32_t>(w1) << 16) | (static_cast<uint32_t>(k[t0]) & 0xffff)));
  }
  const __m256i half = _mm256_set1_epi32(kHalf);
  const __m256i zero = _mm256_setzero_si256();
  size_t q = 0;
  for (; q + 32 <= n; q += 32) {
    __m256i a0 = half, a1 = half, a2 = half, a3 = half;
    for (int j = 0; j < pairs; j++) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r[j][0] + q));
      const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r[j][1] + q));
      const __m256i lo = _mm256_unpacklo_epi8(x, y);  // per lane: bytes 0-7 of x and y, paired
      const __m256i hi = _mm256_unpackhi_epi8(x, y);  // bytes 8-15
      a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_unpacklo_epi8(lo, zero), w[j]));  // 0-3
      a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_unpackhi_epi8(lo, zero), w[j]));  // 4-7
      a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_unpacklo_epi8(hi, zero), w[j]));  // 8-11
      a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_unpackhi_epi8(hi, zero), w[j]));  // 12-15
    }
    // In-lane packs put the bytes back in order; saturation is the clamp to 0..255.
    const __m256i p01 = _mm256_packs_epi32(_mm256_srai_epi32(a0, kBits), _mm256_srai_epi32(a1, kBits));
    const __m256i p23 = _mm256_packs_epi32(_mm256_srai_epi32(a2, kBits), _mm256_srai_epi32(a3, kBits));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + q), _mm256_packus_epi16(p01, p23));
  }
  for (; q < n; q++) {
    int32_t sum = kHalf;
    for (int t = 0; t < taps; t++) sum += rows[t][q] * k[t];
    out[q] = Clamp8(sum);
  }
}
#endif

// acc[q] = kHalf + sum_j rows[j][q] * k[j] for q < n, clamped into out[q]: one output row of the
// vertical filter. `acc` holds n int32 (the portable loop's scratch for many taps).
void VerticalRow(const uint8_t* const* rows, const int32_t* k, int taps, size_t n, int32_t* acc, uint8_t* out) {
#ifdef GPUFEED_HROW_SIMD
  if (kSimd == 2 && taps <= 256) {
    switch ((taps + 1) / 2) {
      case 1: VerticalAvx2<1>(rows, k, taps, n, out); return;
      case 2: VerticalAvx2<2>(rows, k, taps, n, out); return;
      case 3: VerticalAvx2<3>(rows, k, taps, n, out); return;
      case 4: VerticalAvx2<4>(rows, k, taps, n, out); return;
      default: VerticalAvx2<0>(rows, k, taps, n, out); return;
    }
  }
#endif
  VerticalRowPortable(rows, k, taps, n, acc, out);
}

// The horizontal filter of one row of interleaved RGB (`src`: decoded column ax.lo; readable for
// h.slack() bytes past column ax.hi) into `o`.
void HRow(const uint8_t* src, const Axis& ax, const HTaps& h, int out, const HDst& o) {
#ifdef GPUFEED_HROW_SIMD
  if (kSimd == 2) {
    switch (h.groups) {
      case 1: HRowAvx2<1>(src, ax, h, out, o); return;
      case 2: HRowAvx2<2>(src, ax, h, out, o); return;
      default: HRowAvx2<0>(src, ax, h, out, o); return;
    }
  }
  if (kSimd == 1) {
    switch (h.groups) {
      case 1: HRowSsse3<1>(src, ax, h, out, o); return;
      case 2: HRowSsse3<2>(src, ax, h, out, o); return;
      default: HRowSsse3<0>(src, ax, h, out, o); return;
    }
  }
#endif
  for (int x = 0; x < out; x++) HPixel(src, ax, x, out, o);
}

// Columns first when the box has more rows than the output (a reduction, as libvips orders it:
// fewer rows then go through the horizontal filter), else rows first. The order is a function of
// the box and the output size only, so the bytes for a given (image, box) never change. The flip
// and the layout are applied by the horizontal filter as it writes (the vertical filter treats
// every byte of a row alike), so nothing is copied after the last pass. `region` has h.slack()
// readable bytes past its last row.
void Resize(const uint8_t* region, int rw, int rx0, int ry0, const Axis& ax, const Axis& ay, const HTaps& h, int out, bool flip, bool chw, uint8_t* dst) {
  Scratch& s = scratch;
  const size_t region_row = static_cast<size_t>(rw) * 3;
  const size_t row_bytes = static_cast<size_t>(out) * 3;
  const size_t plane = static_cast<size_t>(out) * out;
  const uint8_t* rows[256];
  if (ay.hi - ay.lo > out) {
    // Per output row: the vertical filter over the needed columns into one line, then the
    // horizontal filter from that line straight into dst.
    const size_t n = static_cast<size_t>(ax.hi - ax.lo) * 3;
    if (s.line.size() < n + h.slack()) s.line.resize(n + h.slack());
    if (s.acc.size() < n) s.acc.resize(n);
    for (int y = 0; y < out; y++) {
      for (int j = 0; j < ay.count[y]; j++) rows[j] = region + static_cast<size_t>(ay.first[y] + j - ry0) * region_row + static_cast<size_t>(ax.lo - rx0) * 3;
      VerticalRow(rows, &ay.weights[static_cast<size_t>(y) * ay.max_taps], ay.count[y], n, s.acc.data(), s.line.data());
      HDst o = chw ? HDst{{dst + static_cast<size_t>(y) * out, dst + plane + static_cast<size_t>(y) * out, dst + 2 * plane + static_cast<size_t>(y) * out}, true, flip}
                   : HDst{{dst + static_cast<size_t>(y) * row_bytes, nullptr, nullptr}, false, flip};
      HRow(s.line.data(), ax, h, out, o);
    }
    return;
  }
  // The horizontal filter over the needed rows (mirrored, and planar for CHW), then the vertical
  // filter straight into dst.
  const int nrows = ay.hi - ay.lo;
  const size_t tplane = static_cast<size_t>(nrows) * out;
  if (s.rows.size() < tplane * 3) s.rows.resize(tplane * 3);
  uint8_t* t = s.rows.data();
  for (int r = 0; r < nrows; r++) {
    const uint8_t* src = region + static_cast<size_t>(ay.lo + r - ry0) * region_row + static_cast<size_t>(ax.lo - rx0) * 3;
    HDst o = chw ? HDst{{t + static_cast<size_t>(r) * out, t + tplane + static_cast<size_t>(r) * out, t + 2 * tplane + static_cast<size_t>(r) * out}, true, flip}
                 : HDst{{t + static_cast<size_t>(r) * row_bytes, nullptr, nullptr}, false, flip};
    HRow(src, ax, h, out, o);
  }
  if (s.acc.size() < row_bytes) s.acc.resize(row_bytes);
  if (chw) {
    for (int c = 0; c < 3; c++) {
      const uint8_t* tp = t + c * tplane;
      for (int y = 0; y < out; y++) {
        for (int j = 0; j < ay.count[y]; j++) rows[j] = tp + static_cast<size_t>(ay.first[y] + j - ay.lo) * out;
        VerticalRow(rows, &ay.weights[static_cast<size_t>(y) * ay.max_taps], ay.count[y], out, s.acc.data(), dst + c * plane + static_cast<size_t>(y) * out);
      }
    }
  } else {
    for (int y = 0; y < out; y++) {
      for (int j = 0; j < ay.count[y]; j++) rows[j] = t + static_cast<size_t>(ay.first[y] + j - ay.lo) * row_bytes;
      VerticalRow(rows, &ay.weights[static_cast<size_t>(y) * ay.max_taps], ay.count[y], row_bytes, s.acc.data(), dst + static_cast<size_t>(y) * row_bytes);
    }
  }
}

// The libjpeg part, apart so that nothing with a destructor lives in the frame that setjmp saves.
// Decodes rows [ry0, ry1) of columns [*cx0, *cx0 + *cw) (widened by libjpeg to iMCU boundaries)
// into scratch.region. Returns false with e->status / e->message set on failure.
bool DecodeRegion(const JpegCropRequest& req, unsigned* denom_io, int need_x0, int need_x1, int need_y0, int need_y1, bool check_tail,
                  jpeg_decompress_struct* cinfo, ErrorManager* e, int* region_x0, int* region_w) {
  // Only the plain data below is touched between setjmp and a longjmp; the scratch vector is
  // resized before libjpeg reads into it.
  if (setjmp(e->jump)) {
    jpeg_destroy_decompress(cinfo);
    return false;
  }
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, req.data, static_cast<unsigned long>(req.size));
  jpeg_read_header(cinfo, TRUE);
  const bool colour = cinfo->num_components == 3 && (cinfo->jpeg_color_space == JCS_YCbCr || cinfo->jpeg_color_space == JCS_RGB);
  const bool gray = cinfo->num_components == 1 && cinfo->jpeg_color_space == JCS_GRAYSCALE;
  if (cinfo->image_width != req.width || cinfo->image_height != req.height || cinfo->data_precision != 8 || !(colour || gray)) {
    std::snprintf(e->message, sizeof e->message, "not handled by the fast path (%ux%u, %d components, color space %d, %d-bit)", cinfo->image_width,
                  cinfo->image_height, cinfo->num_components, static_cast<int>(cinfo->jpeg_color_space), cinfo->data_precision);
    e->status = JpegCropStatus::kUnsupported;
    jpeg_destroy_decompress(cinfo);
    return false;
  }
  cinfo->out_color_space = JCS_RGB;
  // What libvips' loader uses: the exact integer IDCT and fancy (smooth) chroma upsampling.
  cinfo->dct_method = JDCT_ISLOW;
  cinfo->do_fancy_upsampling = TRUE;
  cinfo->scale_num = 1;
  cinfo->scale_denom = *denom_io;
  jpeg_start_decompress(cinfo);
  const int ow = static_cast<int>(cinfo->output_width);
  const int oh = static_cast<int>(cinfo->output_height);
  int x0 = std::max(0, need_x0 - kMargin);
  int x1 = std::min(ow, need_x1 + kMargin);
  const int y0 = std::max(0, need_y0 - kRowMargin);
  const int y1 = std::min(oh, need_y1 + kRowMargin);
  if (x0 > 0 || x1 < ow) {
    JDIMENSION xoff = static_cast<JDIMENSION>(x0);
    JDIMENSION width = static_cast<JDIMENSION>(x1 - x0);
    jpeg_crop_scanline(cinfo, &xoff, &width);
    x0 = static_cast<int>(xoff);
    x1 = x0 + static_cast<int>(width);
  }
  const size_t rw = static_cast<size_t>(x1 - x0);
  const size_t need = rw * 3 * static_cast<size_t>(y1 - y0);
  if (need > scratch.region_room) {
    // libjpeg widened the crop more than the caller allowed for: leave this image to libvips.
    std::snprintf(e->message, sizeof e->message, "region of %zu bytes is over the fast path's room", need);
    e->status = JpegCropStatus::kUnsupported;
    jpeg_destroy_decompress(cinfo);
    return false;
  }
  uint8_t* region = scratch.region.data();  // sized by the caller to the largest possible region
  if (y0 > 0 && jpeg_skip_scanlines(cinfo, static_cast<JDIMENSION>(y0)) != static_cast<JDIMENSION>(y0)) ERREXIT(cinfo, JERR_BAD_LENGTH);
  while (static_cast<int>(cinfo->output_scanline) < y1) {
    JSAMPROW row = region + static_cast<size_t>(static_cast<int>(cinfo->output_scanline) - y0) * rw * 3;
    if (jpeg_read_scanlines(cinfo, &row, 1) != 1) ERREXIT(cinfo, JERR_BAD_LENGTH);
  }
  if (check_tail) {
    // The data does not end in EOI: decode the entropy data to the end, so a truncated file is an
    // error whatever its box (libjpeg's skip of the last rows would not read them).
    const int left = oh - 1 - static_cast<int>(cinfo->output_scanline);
    if (left > 0) jpeg_skip_scanlines(cinfo, static_cast<JDIMENSION>(left));
    if (cinfo->output_scanline < cinfo->output_height) {
      // The last row, into the spare rows buffer (the region's rows are kept).
      if (scratch.rows.size() < rw * 3) scratch.rows.resize(rw * 3);
      JSAMPROW row = scratch.rows.data();
      jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
  } else {
    jpeg_abort_decompress(cinfo);
  }
  jpeg_destroy_decompress(cinfo);
  *region_x0 = x0;
  *region_w = static_cast<int>(rw);
  return true;
}

}  // namespace

bool JpegCropAvailable() { return true; }

JpegCropResult JpegCropResize(const JpegCropRequest& req, uint8_t* dst, size_t dst_len) {
  JpegCropResult r;
  const uint64_t out = req.out;
  if (req.data == nullptr || req.size < 4 || out == 0 || out > 65535 || dst_len != out * out * 3 || req.width == 0 || req.height == 0 || req.box_width == 0 ||
      req.box_height == 0 || uint64_t{req.left} + req.box_width > req.width || uint64_t{req.top} + req.box_height > req.height ||
      (req.max_denom != 1 && req.max_denom != 2 && req.max_denom != 4 && req.max_denom != 8) || req.denom_gap == 0) {
    r.status = JpegCropStatus::kBad;
    r.message = "bad request (box outside the image, or output size)";
    return r;
  }
  unsigned denom = 1;
  for (unsigned d = req.max_denom; d > 1; d /= 2) {
    const uint64_t min_side = uint64_t{req.denom_gap} * d * out;
    if (req.box_width >= min_side && req.box_height >= min_side) {
      denom = d;
      break;
    }
  }
  // The box in decoded (scaled) pixel coordinates, and the decoded image's size (ceil(W / d)).
  const double b_x0 = static_cast<double>(req.left) / denom, b_x1 = static_cast<double>(req.left + req.box_width) / denom;
  const double b_y0 = static_cast<double>(req.top) / denom, b_y1 = static_cast<double>(req.top + req.box_height) / denom;
  const int dw = static_cast<int>((req.width + denom - 1) / denom);
  const int dh = static_cast<int>((req.height + denom - 1) / denom);
  const int clamp_x0 = static_cast<int>(std::floor(b_x0)), clamp_x1 = std::min(dw, static_cast<int>(std::ceil(b_x1)));
  const int clamp_y0 = static_cast<int>(std::floor(b_y0)), clamp_y1 = std::min(dh, static_cast<int>(std::ceil(b_y1)));
  Scratch& s = scratch;
  const bool shifted = b_x1 - b_x0 < out || b_y1 - b_y0 < out;
  MakeAxis(b_x0, b_x1, clamp_x0, clamp_x1, static_cast<int>(out), shifted, &s.x);
  MakeAxis(b_y0, b_y1, clamp_y0, clamp_y1, static_cast<int>(out), shifted, &s.y);
  if (s.x.max_taps > 256 || s.y.max_taps > 256) {
    // A reduction of over ~100x after DCT scaling: left to libvips.
    r.status = JpegCropStatus::kUnsupported;
    r.message = "reduction too large for the fast path";
    return r;
  }
  // Room for the widest region libjpeg may return: the needed columns plus margins, widened to
  // whole iMCUs (at most 32 decoded pixels each side), over the needed rows plus margins.
  const size_t max_w = std::min<size_t>(dw, static_cast<size_t>(s.x.hi - s.x.lo) + 2 * kMargin + 64);
  const size_t max_h = std::min<size_t>(dh, static_cast<size_t>(s.y.hi - s.y.lo) + 2 * kRowMargin);
  const size_t region_bytes = max_w * max_h * 3;
  if (region_bytes > kMaxRegionBytes) {
    r.status = JpegCropStatus::kUnsupported;
    r.message = "region over the fast path's limit";
    return r;
  }
  if (s.h.from != s.x.generation) MakeHTaps(s.x, static_cast<int>(out), &s.h);
  // The horizontal filter's loads may read a little past the region's last pixel.
  if (s.region.size() < region_bytes + s.h.slack()) s.region.resize(region_bytes + s.h.slack());
  s.region_room = region_bytes;
  const bool check_tail = !(req.data[req.size - 2] == 0xff && req.data[req.size - 1] == 0xd9);

  jpeg_decompress_struct cinfo;
  ErrorManager e;
  std::memset(&cinfo, 0, sizeof cinfo);
  cinfo.err = jpeg_std_error(&e.pub);
  e.pub.error_exit = OnError;
  e.pub.emit_message = OnMessage;
  e.status = JpegCropStatus::kUnsupported;
  e.message[0] = 0;
  int rx0 = 0, rw = 0;
  const int ry0 = std::max(0, s.y.lo - kRowMargin);
  if (!DecodeRegion(req, &denom, s.x.lo, s.x.hi, s.y.lo, s.y.hi, check_tail, &cinfo, &e, &rx0, &rw)) {
    r.status = e.status;
    r.message = e.message;
  } else {
    Resize(s.region.data(), rw, rx0, ry0, s.x, s.y, s.h, static_cast<int>(out), req.flip, req.chw, dst);
    r.status = JpegCropStatus::kOk;
    r.denom = denom;
  }
  // Scratch grown for a very large image is not kept for the thread's lifetime.
  for (std::vector<uint8_t>* v : {&s.region, &s.rows, &s.line}) {
    if (v->capacity() > (size_t{32} << 20)) std::vector<uint8_t>().swap(*v);
  }
  return r;
}

#endif  // GPUFEED_HAVE_JPEG

}  // namespace gpufeed
