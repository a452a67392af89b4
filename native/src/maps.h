// The process-wide registry of read-only file mappings (mmap gather). Like the slab registry: one
// leaked instance behind a mutex, safe from any thread, failures as NativeError values.
//
// Several handles (one per mapFile call) may share one mapping of the same file (same device,
// inode and size): the mapping goes when the last handle is released and no copy is in progress.
//
// Truncation: an access to a page of a mapped file past its current end (the file was truncated
// after it was mapped) raises SIGBUS. Copies from a mapping run under the fault guard
// (fault-guard.h), which turns that into an error, and each mapping keeps a descriptor of its
// file so a copy can check that the file did not shrink under it when its probe cannot tell:
// the tail of the page holding the new end reads as zeros without a fault. See native/README.md.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>

#include "native-error.h"

namespace gpufeed {

// Flags of MapRegistry::Map.
constexpr unsigned kMapPopulate = 1;      // MAP_POPULATE: fault every page in at map time
constexpr unsigned kMapAdviseRandom = 2;  // madvise(MADV_RANDOM): no read-ahead around faults
constexpr unsigned kMapAdviseWillNeed = 4;  // madvise(MADV_WILLNEED): start reading the file in

struct MapStats {
  size_t handles = 0, mappings = 0, bytes = 0;
};

class MapRegistry {
 public:
  static MapRegistry& Get();

  // Maps a file read-only (a private duplicate of the descriptor stays with the mapping, for
  // Shrunk). `fd` >= 0
  // maps that open file, else `path` is opened. A new handle id goes to *id, the file size to
  // *size. An empty file gets a handle with no mapping (every non-empty run is out of range).
  NativeError Map(int fd, const std::string& path, unsigned flags, unsigned* id, uint64_t* size);
  // Releases a handle. Fails for an unknown (or already released) id.
  NativeError Release(unsigned id);
  using Key = std::tuple<dev_t, ino_t, uint64_t>;
  // A reference that keeps the mapping alive during a copy (Acquire ... Unref), even when the
  // handle is released meanwhile by another thread.
  struct Pin {
    Key key;
    const uint8_t* ptr = nullptr;
    uint64_t size = 0;
    int fd = -1;
  };
  NativeError Acquire(unsigned id, Pin* out);
  void Unref(const Pin& pin);
  // The file's current size when it is now shorter than `end` bytes (it was truncated after it
  // was mapped), else -1. One fstat.
  static int64_t Shrunk(const Pin& pin, uint64_t end);
  MapStats Stats();

 private:
  struct Mapping {
    uint8_t* ptr;
    uint64_t size;
    int fd;  // owned duplicate, closed with the mapping
    unsigned handles;
    unsigned ops;
  };
  // Called with the lock held: removes the mapping when nothing uses it, returning what to munmap.
  bool TakeIfDead(const Key& key, uint8_t** ptr, uint64_t* size, int* fd);

  std::mutex mu_;
  unsigned next_id_ = 1;
  std::map<Key, Mapping> mappings_;
  std::unordered_map<unsigned, Key> handles_;  // handle id -> mapping
};

}  // namespace gpufeed
