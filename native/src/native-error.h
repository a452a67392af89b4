// Errors are built as plain values in the C++ core (no exceptions: NAPI_DISABLE_CPP_EXCEPTIONS) and
// turned into JS exceptions only in addon.cc, on the JS thread. `code` is a gpufeed ErrorCode string.
#pragma once
#include <string>

namespace gpufeed {

struct NativeError {
  bool failed = false;
  const char* code = "GPUFEED_NATIVE";  // or GPUFEED_INVALID_OPTION for a bad slab id
  std::string message;
  std::string syscall;  // e.g. "mmap"; empty when not a syscall failure
  int err = 0;          // errno, 0 when not a syscall failure
  unsigned slab = 0;    // slab id the error is about, 0 when none

  static NativeError Invalid(unsigned slab, std::string message) {
    NativeError e;
    e.failed = true;
    e.code = "GPUFEED_INVALID_OPTION";
    e.message = std::move(message);
    e.slab = slab;
    return e;
  }
  static NativeError Sys(unsigned slab, const char* syscall, int err, std::string message) {
    NativeError e;
    e.failed = true;
    e.message = std::move(message);
    e.syscall = syscall;
    e.err = err;
    e.slab = slab;
    return e;
  }
};

}  // namespace gpufeed
