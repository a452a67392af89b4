#include "registry.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gpufeed {

namespace {
constexpr unsigned kMaxSlabId = 0x7fffffff;  // ids are never reused, so a stale id cannot alias
}

Registry& Registry::Get() {
  // Leaked on purpose: worker threads may finalize views while static destructors run at exit.
  static Registry* r = new Registry();
  return *r;
}

NativeError Registry::Alloc(size_t bytes, PinMode mode, SlabSnapshot* out) {
  unsigned id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (next_id_ > kMaxSlabId) return NativeError::Sys(0, "alloc", 0, "slab ids exhausted");
    id = next_id_++;
  }
  // Syscalls and page-locking run outside the lock: mlock faults in every page.
  std::string name = "gpufeed-slab-" + std::to_string(id);
  // memfd: nothing in /dev/shm, another process maps it via /proc/<pid>/fd/<fd>, and the kernel
  // frees it when the last mapping and descriptor close, whoever dies first.
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return NativeError::Sys(id, "memfd_create", errno, "memfd_create failed for slab " + std::to_string(id) + ": " + strerror(errno));
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    int err = errno;
    close(fd);
    return NativeError::Sys(id, "ftruncate", err, "ftruncate to " + std::to_string(bytes) + " bytes failed for slab " + std::to_string(id) + ": " + strerror(err));
  }
  // A consumer process that shrank the file would make our accesses SIGBUS: forbid resizing.
  fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    close(fd);
    return NativeError::Sys(id, "mmap", err, "mmap of " + std::to_string(bytes) + " bytes failed for slab " + std::to_string(id) + ": " + strerror(err));
  }
  PinResult pin = Pin(p, bytes, mode);

  Slab s{id, static_cast<uint8_t*>(p), bytes, fd, pin.kind, false, 0, 0, pin.error, pin.cuda_error};
  out->id = id;
  out->bytes = bytes;
  out->fd = fd;
  out->kind = pin.kind;
  out->views = 0;
  out->pin_error = pin.error;
  out->cuda_error = pin.cuda_error;
  std::lock_guard<std::mutex> lock(mu_);
  slabs_.emplace(id, std::move(s));
  return NativeError();
}

NativeError Registry::Free(unsigned id) {
  Slab dead;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = slabs_.find(id);
    if (it == slabs_.end() || it->second.freed) {
      return NativeError::Invalid(id, "slab " + std::to_string(id) + " is not allocated (already freed, or never allocated)");
    }
    it->second.freed = true;
    if (!TakeIfDead(id, &dead)) return NativeError();
  }
  Unmap(dead);
  return NativeError();
}

bool Registry::Info(unsigned id, SlabSnapshot* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slabs_.find(id);
  if (it == slabs_.end() || it->second.freed) return false;
  const Slab& s = it->second;
  out->id = s.id;
  out->bytes = s.bytes;
  out->fd = s.fd;
  out->kind = s.kind;
  out->views = s.views;
  out->pin_error = s.pin_error;
  out->cuda_error = s.cuda_error;
  return true;
}

RegistryStats Registry::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  RegistryStats st;
  for (const auto& [id, s] : slabs_) {
    if (s.freed) {
      st.pending_slabs++;
      st.pending_bytes += s.bytes;
    } else {
      st.slabs++;
      st.bytes += s.bytes;
      if (s.kind != MemoryKind::kPageable) st.pinned_bytes += s.bytes;
    }
  }
  st.views = views_.size();
  return st;
}

NativeError Registry::Acquire(unsigned id, uint8_t** ptr, size_t* bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slabs_.find(id);
  if (it == slabs_.end() || it->second.freed) {
    return NativeError::Invalid(id, "slab " + std::to_string(id) + " is not allocated (already freed, or never allocated)");
  }
  it->second.ops++;
  *ptr = it->second.ptr;
  *bytes = it->second.bytes;
  return NativeError();
}

void Registry::Unref(unsigned id) {
  Slab dead;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = slabs_.find(id);
    if (it == slabs_.end() || it->second.ops == 0) return;
    it->second.ops--;
    if (!TakeIfDead(id, &dead)) return;
  }
  Unmap(dead);
}

uint64_t Registry::AddView(unsigned id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slabs_.find(id);
  if (it == slabs_.end()) return 0;  // cannot happen between Acquire and Unref
  // The Acquire reference becomes the view's reference.
  it->second.ops--;
  it->second.views++;
  uint64_t vid = next_view_++;
  views_.emplace(vid, id);
  return vid;
}

bool Registry::DropView(uint64_t view_id) {
  Slab dead;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto v = views_.find(view_id);
    if (v == views_.end()) return false;
    unsigned id = v->second;
    views_.erase(v);
    auto it = slabs_.find(id);
    if (it == slabs_.end()) return true;
    it->second.views--;
    if (!TakeIfDead(id, &dead)) return true;
  }
  Unmap(dead);
  return true;
}

bool Registry::HasView(uint64_t view_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return views_.count(view_id) != 0;
}

bool Registry::TakeIfDead(unsigned id, Slab* out) {
  auto it = slabs_.find(id);
  if (it == slabs_.end()) return false;
  const Slab& s = it->second;
  if (!s.freed || s.views != 0 || s.ops != 0) return false;
  *out = std::move(it->second);
  slabs_.erase(it);
  return true;
}

void Registry::Unmap(const Slab& s) {
  Unpin(s.ptr, s.bytes, s.kind);
  munmap(s.ptr, s.bytes);
  close(s.fd);
}

}  // namespace gpufeed
