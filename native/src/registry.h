// The process-wide slab registry. One instance per process (not per thread or per addon
// instance), so that every worker thread sees the same slabs and passes ids, never buffers.
// Pure C++ (no napi): every entry point is safe from any thread and reports failure as a
// NativeError value.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "native-error.h"
#include "pinning.h"

namespace gpufeed {

struct SlabSnapshot {
  unsigned id = 0;
  size_t bytes = 0;
  int fd = -1;
  MemoryKind kind = MemoryKind::kPageable;
  unsigned views = 0;
  std::string pin_error;
  std::string cuda_error;
};

struct RegistryStats {
  size_t slabs = 0, bytes = 0, pinned_bytes = 0;
  size_t pending_slabs = 0, pending_bytes = 0;  // freed, still mapped by some thread's view
  size_t views = 0;
};

class Registry {
 public:
  static Registry& Get();

  // `bytes` must be a positive multiple of the page size (the TS wrapper rounds).
  NativeError Alloc(size_t bytes, PinMode mode, SlabSnapshot* out);
  // Marks the slab freed; the mapping goes when the last view or in-flight operation lets go.
  NativeError Free(unsigned id);
  bool Info(unsigned id, SlabSnapshot* out);
  RegistryStats Stats();

  // A reference that keeps the mapping alive: a view (AddView/DropView) or a native operation
  // in progress (Acquire/Unref). Fails for an unknown or freed slab.
  NativeError Acquire(unsigned id, uint8_t** ptr, size_t* bytes);
  void Unref(unsigned id);
  // After Acquire: records a view and returns its id (the token a view's finalizer carries).
  uint64_t AddView(unsigned id);
  // Idempotent: false when the view was already dropped.
  bool DropView(uint64_t view_id);
  bool HasView(uint64_t view_id);

 private:
  struct Slab {
    unsigned id;
    uint8_t* ptr;
    size_t bytes;
    int fd;
    MemoryKind kind;
    bool freed;
    unsigned views;  // attached views, all threads
    unsigned ops;    // native operations in progress
    std::string pin_error;
    std::string cuda_error;
  };
  // Called with the lock held; returns true and fills *out when the slab must now be unmapped
  // (done outside the lock, since unregistering from CUDA can take milliseconds).
  bool TakeIfDead(unsigned id, Slab* out);
  static void Unmap(const Slab& s);

  std::mutex mu_;
  unsigned next_id_ = 1;
  std::unordered_map<unsigned, Slab> slabs_;
  uint64_t next_view_ = 1;
  std::unordered_map<uint64_t, unsigned> views_;  // view id -> slab id
};

}  // namespace gpufeed
