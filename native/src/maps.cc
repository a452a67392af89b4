#include "maps.h"

#include "fault-guard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gpufeed {

namespace {
constexpr unsigned kMaxMapId = 0x7fffffff;  // ids are never reused, so a stale id cannot alias
}

MapRegistry& MapRegistry::Get() {
  // Leaked on purpose, like the slab registry: threads may release handles during exit.
  static MapRegistry* r = new MapRegistry();
  return *r;
}

NativeError MapRegistry::Map(int fd, const std::string& path, unsigned flags, unsigned* id, uint64_t* size) {
  // Every copy from a mapping runs under the guard: no mapping without it.
  const std::string& guard = InstallFaultGuard();
  if (!guard.empty()) return NativeError::Sys(0, "sigaction", 0, "cannot install the SIGBUS guard for file maps: " + guard);
  bool own = fd < 0;
  std::string what = own ? path : "fd " + std::to_string(fd);
  if (own) {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      return NativeError::Sys(0, "open", err, "open " + path + ": " + strerror(err));
    }
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    if (own) close(fd);
    return NativeError::Sys(0, "fstat", err, "fstat " + what + ": " + strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    if (own) close(fd);
    return NativeError::Invalid(0, "cannot map " + what + ": not a regular file");
  }
  uint64_t bytes = static_cast<uint64_t>(st.st_size);
  Key key{st.st_dev, st.st_ino, bytes};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (next_id_ > kMaxMapId) {
      if (own) close(fd);
      return NativeError::Sys(0, "mmap", 0, "file mapping ids exhausted");
    }
    auto it = mappings_.find(key);
    if (it != mappings_.end()) {  // the same file is mapped already: share it
      it->second.handles++;
      *id = next_id_++;
      handles_.emplace(*id, key);
      *size = bytes;
      if (own) close(fd);
      return NativeError();
    }
  }
  // mmap (and MAP_POPULATE's faulting) runs outside the lock.
  uint8_t* ptr = nullptr;
  if (bytes > 0) {
    int mflags = MAP_SHARED | ((flags & kMapPopulate) ? MAP_POPULATE : 0);
    void* p = mmap(nullptr, bytes, PROT_READ, mflags, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      if (own) close(fd);
      return NativeError::Sys(0, "mmap", err, "mmap of " + std::to_string(bytes) + " bytes of " + what + ": " + strerror(err));
    }
    ptr = static_cast<uint8_t*>(p);
    if (flags & kMapAdviseRandom) madvise(ptr, bytes, MADV_RANDOM);
    if (flags & kMapAdviseWillNeed) madvise(ptr, bytes, MADV_WILLNEED);
  }
  // The mapping's own descriptor, for the size check after a copy (Shrunk).
  int keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (keep < 0) {
    int err = errno;
    if (own) close(fd);
    if (ptr) munmap(ptr, bytes);
    return NativeError::Sys(0, "fcntl", err, "dup of " + what + ": " + strerror(err));
  }
  if (own) close(fd);
  uint8_t* extra = nullptr;  // another thread mapped the same file meanwhile: keep one mapping
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = mappings_.find(key);
    if (it != mappings_.end()) {
      extra = ptr;
      it->second.handles++;
    } else {
      mappings_.emplace(key, Mapping{ptr, bytes, keep, 1, 0});
      keep = -1;
    }
    *id = next_id_++;
    handles_.emplace(*id, key);
  }
  if (extra) munmap(extra, bytes);
  if (keep >= 0) close(keep);
  *size = bytes;
  return NativeError();
}

NativeError MapRegistry::Release(unsigned id) {
  uint8_t* ptr = nullptr;
  uint64_t size = 0;
  int fd = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto h = handles_.find(id);
    if (h == handles_.end()) return NativeError::Invalid(0, "file map " + std::to_string(id) + " is not mapped (already unmapped, or never mapped)");
    Key key = h->second;
    handles_.erase(h);
    auto it = mappings_.find(key);
    if (it != mappings_.end()) it->second.handles--;
    if (!TakeIfDead(key, &ptr, &size, &fd)) return NativeError();
  }
  if (ptr) munmap(ptr, size);
  if (fd >= 0) close(fd);
  return NativeError();
}

NativeError MapRegistry::Acquire(unsigned id, Pin* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto h = handles_.find(id);
  if (h == handles_.end()) return NativeError::Invalid(0, "file map " + std::to_string(id) + " is not mapped (already unmapped, or never mapped)");
  Mapping& m = mappings_.at(h->second);
  m.ops++;
  out->key = h->second;
  out->ptr = m.ptr;
  out->size = m.size;
  out->fd = m.fd;
  return NativeError();
}

void MapRegistry::Unref(const Pin& pin) {
  uint8_t* ptr = nullptr;
  uint64_t size = 0;
  int fd = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = mappings_.find(pin.key);
    if (it == mappings_.end() || it->second.ops == 0) return;
    it->second.ops--;
    if (!TakeIfDead(pin.key, &ptr, &size, &fd)) return;
  }
  if (ptr) munmap(ptr, size);
  if (fd >= 0) close(fd);
}

int64_t MapRegistry::Shrunk(const Pin& pin, uint64_t end) {
  struct stat st;
  // The descriptor lives as long as the pin: fstat cannot fail short of a kernel bug, and a
  // failure is treated as no news (the guard still catches faults).
  if (pin.fd < 0 || fstat(pin.fd, &st) != 0) return -1;
  uint64_t now = static_cast<uint64_t>(st.st_size);
  return now < end ? static_cast<int64_t>(now) : -1;
}

bool MapRegistry::TakeIfDead(const Key& key, uint8_t** ptr, uint64_t* size, int* fd) {
  auto it = mappings_.find(key);
  if (it == mappings_.end()) return false;
  if (it->second.handles != 0 || it->second.ops != 0) return false;
  *ptr = it->second.ptr;
  *size = it->second.size;
  *fd = it->second.fd;
  mappings_.erase(it);
  return true;
}

MapStats MapRegistry::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  MapStats st;
  st.handles = handles_.size();
  st.mappings = mappings_.size();
  for (const auto& [k, m] : mappings_) st.bytes += m.size;
  return st;
}

}  // namespace gpufeed
