#include "map-hash.h"

#include <unistd.h>

#include <string>

#include "fault-guard.h"
#include "maps.h"

namespace gpufeed {

namespace {

struct RangeHash {
  const uint8_t* src;
  uint64_t offset, length, size, page;
  Crc32Fn hash;
  uint32_t crc = 0;
  volatile bool probing = false;
  bool check_size = false;  // the probe could not run: ask fstat

  // The hash, then (like the gather copy) one byte of the page after the range: the tail of the
  // page holding a new, shorter end reads as zeros without a fault, so a probe that reads means
  // the file still covers the range.
  static void Run(void* ctx) {
    RangeHash& h = *static_cast<RangeHash*>(ctx);
    h.crc = h.hash(0, h.src + h.offset, h.length);
    uint64_t end = h.offset + h.length;
    uint64_t next = (end + h.page - 1) / h.page * h.page;
    if (next >= h.size) {
      h.check_size = true;
      return;
    }
    h.probing = true;
    volatile uint8_t probe = h.src[next];
    (void)probe;
    h.probing = false;
  }
};

}  // namespace

NativeError HashMapRange(unsigned map_id, uint64_t offset, uint64_t length, Crc32Fn hash, uint32_t* out) {
  MapRegistry& maps = MapRegistry::Get();
  MapRegistry::Pin pin;
  NativeError e = maps.Acquire(map_id, &pin);
  if (e.failed) return e;
  std::string range = "[" + std::to_string(offset) + ", +" + std::to_string(length) + ")";
  if (offset > pin.size || length > pin.size - offset) {
    e = NativeError::Invalid(0, "range " + range + " is outside file map " + std::to_string(map_id) + " (" + std::to_string(pin.size) + " bytes)");
  } else if (length == 0) {
    *out = 0;
  } else {
    static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    RangeHash h{pin.ptr, offset, length, pin.size, page, hash};
    GuardFault fault;
    bool ran = RunGuarded(pin.ptr, pin.size, &RangeHash::Run, &h, &fault);
    if (!ran && !h.probing) {
      uint64_t at = fault.address - reinterpret_cast<uintptr_t>(pin.ptr);
      e = NativeError::Corrupt(-1, static_cast<int64_t>(at), SignalName(fault.signal),
                               "file map " + std::to_string(map_id) + ": " + SignalName(fault.signal) + " reading byte " + std::to_string(at) + " while hashing " + range + " of a " +
                                   std::to_string(pin.size) + "-byte mapping: the file was truncated after it was mapped, or its storage failed");
    } else if (int64_t now = (!ran || h.check_size) ? MapRegistry::Shrunk(pin, offset + length) : -1; now >= 0) {
      e = NativeError::Corrupt(-1, now, nullptr,
                               "file map " + std::to_string(map_id) + ": the file shrank to " + std::to_string(now) + " bytes after it was mapped (" + std::to_string(pin.size) +
                                   " bytes); the hash read " + range);
    } else {
      *out = h.crc;
    }
  }
  maps.Unref(pin);
  return e;
}

}  // namespace gpufeed
