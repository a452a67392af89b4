// The JPEG fast path of the image train/eval transforms: decode only a crop box's region with
// libjpeg-turbo (jpeg_crop_scanline for its columns, jpeg_skip_scanlines for the rows above it,
// stop after its last row; optionally DCT-scaled 1/2, 1/4, 1/8), then resize it to size x size with
// an antialiased triangle filter (bilinear) and write uint8 RGB, flipped or not, HWC or CHW, into
// the caller's buffer. Built only when jpeglib.h is found (binding.gyp defines GPUFEED_HAVE_JPEG);
// without it JpegCropAvailable() is false and the TS side uses sharp for everything.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace gpufeed {

struct JpegCropRequest {
  const uint8_t* data = nullptr;
  size_t size = 0;
  // The image size the caller computed the box from (its header parse); a JPEG whose frame says
  // otherwise is not decoded here (kUnsupported), so the box always matches what libjpeg decodes.
  uint32_t width = 0, height = 0;
  uint32_t left = 0, top = 0, box_width = 0, box_height = 0;
  uint32_t out = 0;           // output side in pixels
  bool flip = false;          // mirror left-right
  bool chw = false;           // planar output (3 planes of out x out), else interleaved RGB
  uint32_t max_denom = 1;     // largest DCT scaling denominator allowed: 1, 2, 4 or 8
  uint32_t denom_gap = 1;     // use denominator d only when the box is >= denom_gap * d * out on both sides
};

enum class JpegCropStatus {
  kOk,
  kUnsupported,  // not handled here (CMYK, 12-bit, a libjpeg warning other than truncation, ...): use the general decoder
  kBad,          // the data is not a decodable JPEG (libjpeg error, or truncated): message says why
};

struct JpegCropResult {
  JpegCropStatus status = JpegCropStatus::kUnsupported;
  unsigned denom = 1;  // the DCT scaling used
  std::string message;
};

bool JpegCropAvailable();

// Writes out * out * 3 bytes to dst (dst_len must be exactly that). The request's box must lie in
// width x height (checked; kBad otherwise). Thread-safe: one libjpeg object per call, scratch
// buffers per thread.
JpegCropResult JpegCropResize(const JpegCropRequest& req, uint8_t* dst, size_t dst_len);

}  // namespace gpufeed
