// The pixel size of an encoded JPEG, PNG or WebP, read from its header in a few dozen byte reads.
// The crop box needs the source size before the decode; asking sharp for it (metadata()) is a
// whole second libvips pipeline per image, about as dear as a tenth of the decode itself. Sizes
// here are what libvips' loaders report (no EXIF rotation: the decode pipeline does not rotate
// either). Anything this parser is not sure of returns undefined, and the caller asks sharp.

/** Width, height and format of an encoded image, from its header. */
export interface ImageHeader {
  width: number;
  height: number;
  format: 'jpeg' | 'png' | 'webp';
}

function u16be(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32be(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) >>> 0) + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);
}

function u16le(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

function u24le(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);
}

/** Bounds the marker walk: a real JPEG reaches its frame header within a few dozen segments. */
const MAX_JPEG_SEGMENTS = 1000;

/** The frame header (SOF0..SOF15 but DHT C4, JPG C8, DAC CC) of a JPEG. */
function jpegSize(b: Uint8Array): ImageHeader | undefined {
  let at = 2;
  for (let n = 0; n < MAX_JPEG_SEGMENTS && at + 4 <= b.length; n++) {
    if (b[at] !== 0xff) return undefined;
    let marker = b[at + 1]!;
    // Fill bytes: any number of 0xFF before a marker.
    while (marker === 0xff && at + 2 < b.length) {
      at += 1;
      marker = b[at + 1]!;
    }
    at += 2;
    // Markers without a length: TEM, RST0..7. SOI again or EOI before a frame: not a JPEG we know.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue;
    if (marker === 0xd8 || marker === 0xd9 || marker === 0xda || marker === 0x00) return undefined;
    if (at + 2 > b.length) return undefined;
    const length = u16be(b, at);
    if (length < 2) return undefined;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (length < 8 || at + 7 > b.length) return undefined;
      const height = u16be(b, at + 3);
      const width = u16be(b, at + 5);
      // Height 0 means "given later by a DNL marker": leave that to libvips.
      if (width === 0 || height === 0) return undefined;
      return { width, height, format: 'jpeg' };
    }
    at += length;
  }
  return undefined;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function pngSize(b: Uint8Array): ImageHeader | undefined {
  // Signature, then the IHDR chunk first: length 13, "IHDR", width, height.
  if (b.length < 24 || u32be(b, 8) !== 13 || b[12] !== 0x49 || b[13] !== 0x48 || b[14] !== 0x44 || b[15] !== 0x52) return undefined;
  const width = u32be(b, 16);
  const height = u32be(b, 20);
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) return undefined;
  return { width, height, format: 'png' };
}

function webpSize(b: Uint8Array): ImageHeader | undefined {
  if (b.length < 30) return undefined;
  const fourcc = String.fromCharCode(b[12]!, b[13]!, b[14]!, b[15]!);
  let width: number;
  let height: number;
  if (fourcc === 'VP8 ') {
    // Lossy: a 3-byte frame tag, the start code 9D 01 2A, then 14-bit width and height.
    if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) return undefined;
    width = u16le(b, 26) & 0x3fff;
    height = u16le(b, 28) & 0x3fff;
  } else if (fourcc === 'VP8L') {
    // Lossless: signature 0x2F, then width - 1 and height - 1 in 14 bits each.
    if (b[20] !== 0x2f) return undefined;
    const bits = (b[21]! | (b[22]! << 8) | (b[23]! << 16) | (b[24]! << 24)) >>> 0;
    width = (bits & 0x3fff) + 1;
    height = ((bits >>> 14) & 0x3fff) + 1;
  } else if (fourcc === 'VP8X') {
    // Extended: flags, then the canvas' width - 1 and height - 1 in 24 bits each. Animated files
    // (flag bit 1) go to libvips, which knows how it lays out their frames.
    if ((b[20]! & 0x02) !== 0) return undefined;
    width = u24le(b, 24) + 1;
    height = u24le(b, 27) + 1;
  } else {
    return undefined;
  }
  if (width === 0 || height === 0) return undefined;
  return { width, height, format: 'webp' };
}

/** The size of a JPEG, PNG or WebP from its header; undefined for any other input or one it cannot read for sure. */
export function readImageHeader(b: Uint8Array): ImageHeader | undefined {
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return jpegSize(b);
  if (b.length >= 8 && PNG_SIGNATURE.every((v, i) => b[i] === v)) return pngSize(b);
  if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) return webpSize(b);
  return undefined;
}
