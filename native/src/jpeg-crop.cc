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
#include <cstring>
#include <vector>

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
};

// `shifted`: some axis of this resize enlarges. libvips (sharp's resize, the reference the tests and
// the bench compare against) then samples every enlarged or unscaled axis through its affine
// transform at b0 + i * s (half an output pixel before the center), and a reduced axis at the
// reduce's centers followed by that same half-pixel shift, i.e. the mean of reduce outputs i - 1
// and i. Both are folded into the one pass here.
void MakeAxis(double b0, double b1, int clamp_lo, int clamp_hi, int out, bool shifted, Axis* a) {
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
}

inline uint8_t Clamp8(int32_t v) {
  v >>= kBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

struct Scratch {
  std::vector<uint8_t> region;
  std::vector<uint8_t> rows;        // the first pass's output
  std::vector<uint8_t> transposed;  // the horizontal pass's input, columns as rows
  std::vector<uint8_t> line;
  std::vector<uint8_t> result;      // out x out RGB, before flip and layout
  std::vector<int32_t> acc;
  Axis x, y;
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

GPUFEED_CLONES void VerticalRow(const uint8_t* const* rows, const int32_t* k, int taps, size_t n, int32_t* acc, uint8_t* out) {
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

// The horizontal filter of `nrows` rows of interleaved RGB (`src`, rows `src_stride` bytes apart,
// src[0] is decoded column ax.lo) into `dst`: nrows x out RGB, or with `chw` three planes of
// nrows x out, mirrored with `flip`. Done as a vertical
// filter over the transposed block, so that the inner loop runs over whole contiguous rows (and
// vectorizes) instead of over a pixel's 2 to 6 taps; the sums are the same integers as the direct
// loop's, so are the bytes.
void Horizontal(const uint8_t* src, size_t src_stride, int nrows, const Axis& ax, int out, bool flip, bool chw, uint8_t* dst) {
  Scratch& s = scratch;
  const int ncols = ax.hi - ax.lo;
  const size_t trow = static_cast<size_t>(nrows) * 3;  // one transposed row: a source column
  s.transposed.resize(static_cast<size_t>(ncols) * trow);
  uint8_t* t = s.transposed.data();
  for (int r = 0; r < nrows; r++) {
    const uint8_t* p = src + static_cast<size_t>(r) * src_stride;
    uint8_t* q = t + static_cast<size_t>(r) * 3;
    for (int c = 0; c < ncols; c++, p += 3, q += trow) {
      q[0] = p[0];
      q[1] = p[1];
      q[2] = p[2];
    }
  }
  s.line.resize(trow);
  s.acc.resize(trow);
  const uint8_t* rows[256];
  const size_t dst_row = static_cast<size_t>(out) * 3;
  for (int x = 0; x < out; x++) {
    for (int j = 0; j < ax.count[x]; j++) rows[j] = t + static_cast<size_t>(ax.first[x] + j - ax.lo) * trow;
    VerticalRow(rows, &ax.weights[static_cast<size_t>(x) * ax.max_taps], ax.count[x], trow, s.acc.data(), s.line.data());
    const uint8_t* l = s.line.data();
    const int to = flip ? out - 1 - x : x;
    if (chw) {
      const size_t plane = static_cast<size_t>(nrows) * out;
      uint8_t* d = dst + to;
      for (int r = 0; r < nrows; r++, l += 3, d += out) {
        d[0] = l[0];
        d[plane] = l[1];
        d[2 * plane] = l[2];
      }
    } else {
      uint8_t* d = dst + static_cast<size_t>(to) * 3;
      for (int r = 0; r < nrows; r++, l += 3, d += dst_row) {
        d[0] = l[0];
        d[1] = l[1];
        d[2] = l[2];
      }
    }
  }
}

// Places the resized rows (out x out RGB, unflipped) into dst in its layout, flipped or not.
void Store(const uint8_t* rgb, int out, bool flip, bool chw, uint8_t* dst) {
  const size_t plane = static_cast<size_t>(out) * out;
  const size_t row_bytes = static_cast<size_t>(out) * 3;
  for (int y = 0; y < out; y++) {
    const uint8_t* line = rgb + static_cast<size_t>(y) * row_bytes;
    if (chw) {
      uint8_t* r = dst + static_cast<size_t>(y) * out;
      for (int x = 0; x < out; x++) {
        const int to = flip ? out - 1 - x : x;
        r[to] = line[x * 3];
        r[to + plane] = line[x * 3 + 1];
        r[to + 2 * plane] = line[x * 3 + 2];
      }
    } else {
      uint8_t* d = dst + static_cast<size_t>(y) * row_bytes;
      if (!flip) {
        std::memcpy(d, line, row_bytes);
      } else {
        for (int x = 0; x < out; x++) std::memcpy(d + static_cast<size_t>(out - 1 - x) * 3, line + static_cast<size_t>(x) * 3, 3);
      }
    }
  }
}

// Columns first when the box has more rows than the output (a reduction, as libvips orders it:
// fewer rows then go through the horizontal filter), else rows first. The order is a function of
// the box and the output size only, so the bytes for a given (image, box) never change.
void Resize(const uint8_t* region, int rw, int rx0, int ry0, const Axis& ax, const Axis& ay, int out, bool flip, bool chw, uint8_t* dst) {
  Scratch& s = scratch;
  const size_t region_row = static_cast<size_t>(rw) * 3;
  const size_t row_bytes = static_cast<size_t>(out) * 3;
  const uint8_t* rows[256];
  if (ay.hi - ay.lo > out) {
    // Vertical pass over the needed columns, then the horizontal pass.
    const size_t n = static_cast<size_t>(ax.hi - ax.lo) * 3;
    s.rows.resize(static_cast<size_t>(out) * n);
    s.acc.resize(std::max(n, s.acc.size()));
    for (int y = 0; y < out; y++) {
      for (int j = 0; j < ay.count[y]; j++) rows[j] = region + static_cast<size_t>(ay.first[y] + j - ry0) * region_row + static_cast<size_t>(ax.lo - rx0) * 3;
      VerticalRow(rows, &ay.weights[static_cast<size_t>(y) * ay.max_taps], ay.count[y], n, s.acc.data(), s.rows.data() + static_cast<size_t>(y) * n);
    }
    // Straight into dst: the last pass places the pixels.
    Horizontal(s.rows.data(), n, out, ax, out, flip, chw, dst);
    return;
  }
  {
    // Horizontal pass over the needed rows, then the vertical pass.
    const int nrows = ay.hi - ay.lo;
    s.rows.resize(static_cast<size_t>(nrows) * row_bytes);
    s.result.resize(static_cast<size_t>(out) * row_bytes);
    Horizontal(region + static_cast<size_t>(ay.lo - ry0) * region_row + static_cast<size_t>(ax.lo - rx0) * 3, region_row, nrows, ax, out, false, false, s.rows.data());
    s.acc.resize(std::max(row_bytes, s.acc.size()));
    for (int y = 0; y < out; y++) {
      for (int j = 0; j < ay.count[y]; j++) rows[j] = s.rows.data() + static_cast<size_t>(ay.first[y] + j - ay.lo) * row_bytes;
      VerticalRow(rows, &ay.weights[static_cast<size_t>(y) * ay.max_taps], ay.count[y], row_bytes, s.acc.data(), s.result.data() + static_cast<size_t>(y) * row_bytes);
    }
  }
  Store(s.result.data(), out, flip, chw, dst);
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
  if (need > scratch.region.size()) {
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
  if (s.region.size() < region_bytes) s.region.resize(region_bytes);
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
    Resize(s.region.data(), rw, rx0, ry0, s.x, s.y, static_cast<int>(out), req.flip, req.chw, dst);
    r.status = JpegCropStatus::kOk;
    r.denom = denom;
  }
  // Scratch grown for a very large image is not kept for the thread's lifetime.
  for (std::vector<uint8_t>* v : {&s.region, &s.rows, &s.transposed, &s.result}) {
    if (v->capacity() > (size_t{32} << 20)) std::vector<uint8_t>().swap(*v);
  }
  return r;
}

#endif  // GPUFEED_HAVE_JPEG

}  // namespace gpufeed
