// Page-locking a mapping: CUDA host registration when the driver library is present at run time,
// else mlock, else nothing (pageable). No CUDA headers: the few entry points are declared here.
#pragma once
#include <cstddef>
#include <string>

namespace gpufeed {

enum class PinMode { kNone = 0, kMlock = 1, kCuda = 2 };  // kCuda: try CUDA, then mlock
enum class MemoryKind { kPageable = 0, kMlock = 1, kCuda = 2 };

const char* KindName(MemoryKind kind);

struct PinResult {
  MemoryKind kind = MemoryKind::kPageable;
  std::string error;  // why the memory stayed pageable (locking refused); empty otherwise
  std::string cuda_error;  // why CUDA registration was not used, when it was tried
};

// Safe from any thread. Never fails hard: the worst outcome is kPageable with a reason.
PinResult Pin(void* ptr, size_t bytes, PinMode mode);
void Unpin(void* ptr, size_t bytes, MemoryKind kind);

struct CudaStatus {
  bool available = false;
  std::string error;  // dlopen/cuInit/... failure, empty when available
};
// Opens libcuda.so.1 and retains device 0's primary context, once per process.
CudaStatus ProbeCuda();

}  // namespace gpufeed
