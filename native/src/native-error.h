// Errors are built as plain values in the C++ core (no exceptions: NAPI_DISABLE_CPP_EXCEPTIONS) and
// turned into JS exceptions only in addon.cc, on the JS thread. `code` is a gpufeed ErrorCode string.
#pragma once
#include <cstdint>
#include <string>

namespace gpufeed {

struct NativeError {
  bool failed = false;
  const char* code = "GPUFEED_NATIVE";  // or GPUFEED_INVALID_OPTION for a bad slab id, GPUFEED_SHARD_CORRUPT
  std::string message;
  std::string syscall;  // e.g. "mmap"; empty when not a syscall failure
  int err = 0;          // errno, 0 when not a syscall failure
  unsigned slab = 0;    // slab id the error is about, 0 when none
  // A read from a file mapping that failed (GPUFEED_SHARD_CORRUPT): the run, the file offset
  // and the signal (nullptr when the file was found shorter without a fault). -1 when none.
  int64_t run = -1;
  int64_t file_offset = -1;
  const char* signal = nullptr;

  static NativeError Invalid(unsigned slab, std::string message) {
    NativeError e;
    e.failed = true;
    e.code = "GPUFEED_INVALID_OPTION";
    e.message = std::move(message);
    e.slab = slab;
    return e;
  }
  static NativeError Corrupt(int64_t run, int64_t file_offset, const char* signal, std::string message) {
    NativeError e;
    e.failed = true;
    e.code = "GPUFEED_SHARD_CORRUPT";
    e.message = std::move(message);
    e.run = run;
    e.file_offset = file_offset;
    e.signal = signal;
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
