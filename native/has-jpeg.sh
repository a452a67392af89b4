#!/bin/sh
# binding.gyp's test for the JPEG fast path (src/jpeg-crop.cc): prints 1 when a program including
# jpeglib.h compiles and links with -ljpeg (Debian: libjpeg62-turbo-dev), else 0, so the addon
# still builds without it (sharp then decodes every image). GPUFEED_NO_JPEG=1 forces 0.
if [ "${GPUFEED_NO_JPEG:-}" = "1" ]; then echo 0; exit 0; fi
out=$(mktemp 2>/dev/null || echo /tmp/gpufeed-has-jpeg.$$)
if printf '#include <stdio.h>\n#include <jpeglib.h>\nint main(void) { struct jpeg_decompress_struct c; jpeg_create_decompress(&c); jpeg_skip_scanlines(&c, 0); return 0; }\n' |
  ${CC:-cc} -x c -o "$out" - -ljpeg >/dev/null 2>&1; then echo 1; else echo 0; fi
rm -f "$out"
