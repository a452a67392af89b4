// The JS boundary: argument unpacking, conversion of NativeError values into exceptions, and
// views. Arguments are validated with good messages in src/memory (TypeScript); the checks here
// only keep a wrong call from touching memory it does not own.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <napi.h>

#include "crc32.h"
#include "fault-guard.h"
#include "jpeg-crop.h"
#include "map-hash.h"
#include "maps.h"
#include "registry.h"

namespace gpufeed {
namespace {

constexpr double kMaxSafe = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER

Napi::Value Throw(Napi::Env env, const NativeError& e) {
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, e.code));
  if (e.slab != 0) err.Set("slabId", Napi::Number::New(env, e.slab));
  if (!e.syscall.empty()) err.Set("syscall", Napi::String::New(env, e.syscall));
  if (e.err != 0) err.Set("errno", Napi::Number::New(env, e.err));
  if (e.run >= 0) err.Set("run", Napi::Number::New(env, static_cast<double>(e.run)));
  if (e.file_offset >= 0) err.Set("fileOffset", Napi::Number::New(env, static_cast<double>(e.file_offset)));
  if (e.signal != nullptr) err.Set("signal", Napi::String::New(env, e.signal));
  err.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value BadArg(Napi::Env env, const char* what) {
  return Throw(env, NativeError::Invalid(0, std::string("gpufeed_native: bad argument ") + what));
}

// A non-negative integer Number no larger than 2^53-1.
bool U64(const Napi::CallbackInfo& info, size_t i, uint64_t* out) {
  if (info.Length() <= i || !info[i].IsNumber()) return false;
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > kMaxSafe || std::floor(d) != d) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

bool SlabId(const Napi::CallbackInfo& info, size_t i, unsigned* out) {
  uint64_t v;
  if (!U64(info, i, &v) || v == 0 || v > 0xffffffffu) return false;
  *out = static_cast<unsigned>(v);
  return true;
}

Napi::Object SnapshotObject(Napi::Env env, const SlabSnapshot& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", Napi::Number::New(env, s.id));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(s.bytes)));
  o.Set("fd", Napi::Number::New(env, s.fd));
  o.Set("kind", Napi::String::New(env, KindName(s.kind)));
  o.Set("views", Napi::Number::New(env, s.views));
  if (!s.pin_error.empty()) o.Set("pinError", Napi::String::New(env, s.pin_error));
  if (!s.cuda_error.empty()) o.Set("cudaError", Napi::String::New(env, s.cuda_error));
  return o;
}

// Runs when a view's ArrayBuffer is collected, detached, or its thread's environment is torn
// down (worker exit). Detach already dropped the reference, so this is then a no-op.
void FinalizeView(napi_env, void*, void* hint) {
  Registry::Get().DropView(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(hint)));
}

// The memcpys of copyRunsFromMap, run under the fault guard. `current` tells a fault's run.
//
// A file truncated after it was mapped faults on pages wholly past its new end, but the tail of
// the page holding the new end reads as zeros. So after the copies one byte of the page right
// after the furthest byte read is touched (probe): if it reads, the file still extends past every
// run and the copies hold file bytes; if it faults, or there is no such page in the mapping (a
// run reached the mapping's last page), the caller asks the file's size (one fstat).
struct MapGather {
  uint8_t* dst;
  const uint8_t* src;
  const double* runs;  // [fileOffset, targetOffset, length] x count, checked already
  uint64_t count;
  uint64_t size;  // the mapping's length
  uint64_t page;
  volatile uint64_t current = 0;
  volatile bool probing = false;
  bool check_size = false;  // set when the probe could not run: ask fstat
  uint64_t total = 0;
  uint64_t end = 0;  // one past the last file byte any run reads

  static void Run(void* ctx) {
    MapGather& g = *static_cast<MapGather*>(ctx);
    for (uint64_t i = 0; i < g.count; i++) {
      const double* v = g.runs + 3 * i;
      uint64_t foff = static_cast<uint64_t>(v[0]), len = static_cast<uint64_t>(v[2]);
      g.current = i;
      if (len > 0) {
        memcpy(g.dst + static_cast<uint64_t>(v[1]), g.src + foff, len);
        if (foff + len > g.end) g.end = foff + len;
      }
      g.total += len;
    }
    if (g.end == 0) return;
    uint64_t next = (g.end + g.page - 1) / g.page * g.page;
    if (next >= g.size) {
      g.check_size = true;
      return;
    }
    g.probing = true;
    volatile uint8_t probe = g.src[next];
    (void)probe;
    g.probing = false;
  }
};

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
        InstanceMethod("pageSize", &Addon::PageSize),
        InstanceMethod("alloc", &Addon::Alloc),
        InstanceMethod("free", &Addon::Free),
        InstanceMethod("info", &Addon::Info),
        InstanceMethod("status", &Addon::Status),
        InstanceMethod("attach", &Addon::Attach),
        InstanceMethod("detach", &Addon::Detach),
        InstanceMethod("pread", &Addon::Pread),
        InstanceMethod("preadRuns", &Addon::PreadRuns),
        InstanceMethod("copy", &Addon::Copy),
        InstanceMethod("claimOnce", &Addon::ClaimOnce),
        InstanceMethod("mapFile", &Addon::MapFile),
        InstanceMethod("unmapFile", &Addon::UnmapFile),
        InstanceMethod("copyRunsFromMap", &Addon::CopyRunsFromMap),
        InstanceMethod("mapStatus", &Addon::MapStatus),
        InstanceMethod("crc32FromMap", &Addon::Crc32FromMap),
        InstanceMethod("crc32", &Addon::Crc32),
        InstanceMethod("crc32Kind", &Addon::Crc32KindName),
        InstanceMethod("jpegCropAvailable", &Addon::JpegCropAvailableFn),
        InstanceMethod("jpegCropResize", &Addon::JpegCropResizeFn),
    });
  }

 private:
  Napi::Value PageSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
  }

  // alloc(bytes, pinMode 0|1|2) -> { id, bytes, fd, kind, views, pinError?, cudaError? }
  Napi::Value Alloc(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t bytes, mode;
    long page = sysconf(_SC_PAGESIZE);
    if (!U64(info, 0, &bytes) || bytes == 0 || bytes % static_cast<uint64_t>(page) != 0) return BadArg(env, "bytes");
    if (!U64(info, 1, &mode) || mode > 2) return BadArg(env, "pinMode");
    SlabSnapshot s;
    NativeError e = Registry::Get().Alloc(bytes, static_cast<PinMode>(mode), &s);
    if (e.failed) return Throw(env, e);
    return SnapshotObject(env, s);
  }

  Napi::Value Free(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    unsigned id;
    if (!SlabId(info, 0, &id)) return BadArg(env, "id");
    NativeError e = Registry::Get().Free(id);
    if (e.failed) return Throw(env, e);
    return env.Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    unsigned id;
    if (!SlabId(info, 0, &id)) return BadArg(env, "id");
    SlabSnapshot s;
    if (!Registry::Get().Info(id, &s)) return env.Undefined();
    return SnapshotObject(env, s);
  }

  // status(probeCuda) -> registry totals, CUDA availability, RLIMIT_MEMLOCK
  Napi::Value Status(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool probe = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
    RegistryStats st = Registry::Get().Stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("slabs", Napi::Number::New(env, static_cast<double>(st.slabs)));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(st.bytes)));
    o.Set("pinnedBytes", Napi::Number::New(env, static_cast<double>(st.pinned_bytes)));
    o.Set("pendingSlabs", Napi::Number::New(env, static_cast<double>(st.pending_slabs)));
    o.Set("pendingBytes", Napi::Number::New(env, static_cast<double>(st.pending_bytes)));
    o.Set("views", Napi::Number::New(env, static_cast<double>(st.views)));
    if (probe) {
      CudaStatus cs = ProbeCuda();
      o.Set("cudaAvailable", Napi::Boolean::New(env, cs.available));
      if (!cs.error.empty()) o.Set("cudaError", Napi::String::New(env, cs.error));
    } else {
      o.Set("cudaAvailable", Napi::Boolean::New(env, false));
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
      o.Set("memlockLimit", Napi::Number::New(env, static_cast<double>(rl.rlim_cur)));
    } else {
      o.Set("memlockLimit", env.Null());
    }
    return o;
  }

  // attach(id) -> a new ArrayBuffer over the whole slab, owned by this thread. The wrapper
  // caches one per slab per thread; each view holds a reference that keeps the mapping alive.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    unsigned id;
    if (!SlabId(info, 0, &id)) return BadArg(env, "id");
    Registry& reg = Registry::Get();
    uint8_t* ptr;
    size_t bytes;
    NativeError e = reg.Acquire(id, &ptr, &bytes);
    if (e.failed) return Throw(env, e);
    uint64_t vid = reg.AddView(id);
    void* hint = reinterpret_cast<void*>(static_cast<uintptr_t>(vid));
    napi_value ab;
    napi_status st = napi_create_external_arraybuffer(env, ptr, bytes, FinalizeView, hint, &ab);
    if (st != napi_ok) {
      reg.DropView(vid);
      // A pending JS exception (e.g. Node's buffer size limit) says why; keep it if there is one.
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) return env.Undefined();
      return Throw(env, NativeError::Sys(id, "napi_create_external_arraybuffer", 0, "cannot create a view of slab " + std::to_string(id)));
    }
    // The view id rides on the buffer itself so detach() finds exactly this view.
    st = napi_wrap(env, ab, hint, nullptr, nullptr, nullptr);
    if (st != napi_ok) {
      napi_detach_arraybuffer(env, ab);
      reg.DropView(vid);
      return Throw(env, NativeError::Sys(id, "napi_wrap", 0, "cannot tag the view of slab " + std::to_string(id)));
    }
    return Napi::Value(env, ab);
  }

  // detach(view) -> true if this call detached it. The buffer (and every typed array over it)
  // becomes zero-length in this thread before the reference is dropped, so nothing in JS can
  // touch the memory once it may be unmapped.
  Napi::Value Detach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArrayBuffer()) return BadArg(env, "view");
    void* hint = nullptr;
    if (napi_unwrap(env, info[0], &hint) != napi_ok || hint == nullptr) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value ignored;
        napi_get_and_clear_last_exception(env, &ignored);
      }
      return BadArg(env, "view (not a slab view)");
    }
    uint64_t vid = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(hint));
    Registry& reg = Registry::Get();
    if (!reg.HasView(vid)) return Napi::Boolean::New(env, false);
    if (napi_detach_arraybuffer(env, info[0]) != napi_ok) {
      return Throw(env, NativeError::Sys(0, "napi_detach_arraybuffer", 0, "cannot detach a slab view"));
    }
    return Napi::Boolean::New(env, reg.DropView(vid));
  }

  // pread(fdOrPath, fileOffset, slabId, slabOffset, length) -> bytes read (short only at EOF)
  Napi::Value Pread(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t foff, soff, len, fdnum = 0;
    unsigned id;
    bool is_path = info.Length() > 0 && info[0].IsString();
    if (!is_path && (!U64(info, 0, &fdnum) || fdnum > 0x7fffffff)) return BadArg(env, "fd");
    if (!U64(info, 1, &foff)) return BadArg(env, "fileOffset");
    if (!SlabId(info, 2, &id)) return BadArg(env, "slabId");
    if (!U64(info, 3, &soff)) return BadArg(env, "slabOffset");
    if (!U64(info, 4, &len)) return BadArg(env, "length");
    std::string path = is_path ? info[0].As<Napi::String>().Utf8Value() : std::string();

    Registry& reg = Registry::Get();
    uint8_t* ptr;
    size_t bytes;
    NativeError e = reg.Acquire(id, &ptr, &bytes);  // keeps the mapping alive while we read
    if (e.failed) return Throw(env, e);
    if (soff > bytes || len > bytes - soff) {
      reg.Unref(id);
      return Throw(env, NativeError::Invalid(id, "range [" + std::to_string(soff) + ", +" + std::to_string(len) + ") is outside slab " + std::to_string(id)));
    }
    int fd = static_cast<int>(fdnum);
    if (is_path) {
      fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        int err = errno;
        reg.Unref(id);
        return Throw(env, NativeError::Sys(id, "open", err, "open " + path + ": " + strerror(err)));
      }
    }
    uint64_t done = 0;
    int err = 0;
    while (done < len) {  // ends: each pass reads > 0 bytes, hits EOF, or fails
      ssize_t n = pread(fd, ptr + soff + done, len - done, static_cast<off_t>(foff + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      if (n == 0) break;
      done += static_cast<uint64_t>(n);
    }
    if (is_path) close(fd);
    reg.Unref(id);
    if (err != 0) {
      return Throw(env, NativeError::Sys(id, "pread", err, "pread into slab " + std::to_string(id) + (is_path ? " from " + path : " from fd " + std::to_string(fd)) + ": " + strerror(err)));
    }
    return Napi::Number::New(env, static_cast<double>(done));
  }

  // preadRuns(runs: Float64Array, count, target: slabId | Uint8Array) -> bytes read.
  // Run i is runs[4i..4i+3] = [fd, fileOffset, targetOffset, length]: many reads in one call, so a
  // batch of shuffled rows costs one crossing of the JS boundary instead of one per row. Every
  // run is checked against the target before any byte is read. Stops at the first run that ends
  // short (end of file) and returns the bytes read so far: the caller, who knows the file's name,
  // compares with the sum of lengths and reports which run was short.
  Napi::Value PreadRuns(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      return BadArg(env, "runs (not a Float64Array)");
    }
    Napi::Float64Array runs = info[0].As<Napi::Float64Array>();
    uint64_t count;
    if (!U64(info, 1, &count) || count > runs.ElementLength() / 4) return BadArg(env, "count");
    bool to_slab = info.Length() > 2 && info[2].IsNumber();
    unsigned id = 0;
    uint8_t* ptr = nullptr;
    size_t bytes = 0;
    Registry& reg = Registry::Get();
    if (to_slab) {
      if (!SlabId(info, 2, &id)) return BadArg(env, "slabId");
      NativeError e = reg.Acquire(id, &ptr, &bytes);  // keeps the mapping alive while we read
      if (e.failed) return Throw(env, e);
    } else if (info.Length() > 2 && info[2].IsTypedArray() && info[2].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      Napi::Uint8Array t = info[2].As<Napi::Uint8Array>();
      ptr = t.Data();
      bytes = t.ByteLength();
    } else {
      return BadArg(env, "target (a slab id or a Uint8Array)");
    }
    // A private copy of the runs: the target may alias the runs' own buffer (a view of the same
    // slab), and a read must not rewrite runs already checked.
    std::vector<double> copy(runs.Data(), runs.Data() + 4 * count);
    const double* r = copy.data();
    NativeError bad = CheckRuns(r, count, bytes, id);
    if (bad.failed) {
      if (to_slab) reg.Unref(id);
      return Throw(env, bad);
    }
    uint64_t total = 0;
    int err = 0;
    uint64_t failed_run = 0;
    bool short_read = false;
    for (uint64_t i = 0; i < count && err == 0 && !short_read; i++) {
      int fd = static_cast<int>(r[4 * i]);
      uint64_t foff = static_cast<uint64_t>(r[4 * i + 1]);
      uint64_t toff = static_cast<uint64_t>(r[4 * i + 2]);
      uint64_t len = static_cast<uint64_t>(r[4 * i + 3]);
      uint64_t done = 0;
      while (done < len) {  // ends: each pass reads > 0 bytes, hits EOF, or fails
        ssize_t n = pread(fd, ptr + toff + done, len - done, static_cast<off_t>(foff + done));
        if (n < 0) {
          if (errno == EINTR) continue;
          err = errno;
          failed_run = i;
          break;
        }
        if (n == 0) {
          short_read = true;
          break;
        }
        done += static_cast<uint64_t>(n);
      }
      total += done;
    }
    if (to_slab) reg.Unref(id);
    if (err != 0) {
      int fd = static_cast<int>(r[4 * failed_run]);
      return Throw(env, NativeError::Sys(id, "pread", err, "pread run " + std::to_string(failed_run) + " from fd " + std::to_string(fd) + (to_slab ? " into slab " + std::to_string(id) : std::string(" into a buffer")) + ": " + strerror(err)));
    }
    return Napi::Number::New(env, static_cast<double>(total));
  }

  // Every run's numbers are integers in range and its target range lies inside [0, bytes).
  static NativeError CheckRuns(const double* r, uint64_t count, size_t bytes, unsigned id) {
    for (uint64_t i = 0; i < count; i++) {
      const double* v = r + 4 * i;
      bool ok = true;
      for (int k = 0; k < 4 && ok; k++) ok = v[k] >= 0 && v[k] <= kMaxSafe && std::floor(v[k]) == v[k];
      ok = ok && v[0] <= 0x7fffffff && v[1] + v[3] <= 9.2e18;
      if (ok) {
        uint64_t toff = static_cast<uint64_t>(v[2]), len = static_cast<uint64_t>(v[3]);
        if (toff > bytes || len > bytes - toff) {
          return NativeError::Invalid(id, "run " + std::to_string(i) + ": range [" + std::to_string(toff) + ", +" + std::to_string(len) + ") is outside " +
                                              (id != 0 ? "slab " + std::to_string(id) : std::string("the target buffer")) + " (" + std::to_string(bytes) + " bytes)");
        }
      } else {
        return NativeError::Invalid(id, "run " + std::to_string(i) + ": fd, fileOffset, targetOffset and length must be non-negative safe integers");
      }
    }
    return NativeError();
  }

  // copy(dstId, dstOffset, srcId, srcOffset, length): memmove between (or within) slabs.
  Napi::Value Copy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    unsigned dst_id, src_id;
    uint64_t doff, soff, len;
    if (!SlabId(info, 0, &dst_id)) return BadArg(env, "dstId");
    if (!U64(info, 1, &doff)) return BadArg(env, "dstOffset");
    if (!SlabId(info, 2, &src_id)) return BadArg(env, "srcId");
    if (!U64(info, 3, &soff)) return BadArg(env, "srcOffset");
    if (!U64(info, 4, &len)) return BadArg(env, "length");
    Registry& reg = Registry::Get();
    uint8_t *dp, *sp;
    size_t db, sb;
    NativeError e = reg.Acquire(dst_id, &dp, &db);
    if (e.failed) return Throw(env, e);
    e = reg.Acquire(src_id, &sp, &sb);
    if (e.failed) {
      reg.Unref(dst_id);
      return Throw(env, e);
    }
    bool ok = doff <= db && len <= db - doff && soff <= sb && len <= sb - soff;
    if (ok && len > 0) memmove(dp + doff, sp + soff, len);
    reg.Unref(src_id);
    reg.Unref(dst_id);
    if (!ok) return Throw(env, NativeError::Invalid(dst_id, "copy range is outside slab " + std::to_string(dst_id) + " or " + std::to_string(src_id)));
    return env.Undefined();
  }

  // mapFile(pathOrFd, flags) -> { mapId, size }: a read-only shared mapping of the whole file
  // (flags: 1 MAP_POPULATE, 2 MADV_RANDOM, 4 MADV_WILLNEED). See maps.h for truncation.
  Napi::Value MapFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t fdnum = 0, flags = 0;
    bool is_path = info.Length() > 0 && info[0].IsString();
    if (!is_path && (!U64(info, 0, &fdnum) || fdnum > 0x7fffffff)) return BadArg(env, "fd");
    if (info.Length() > 1 && !info[1].IsUndefined() && (!U64(info, 1, &flags) || flags > 7)) return BadArg(env, "flags");
    std::string path = is_path ? info[0].As<Napi::String>().Utf8Value() : std::string();
    unsigned id = 0;
    uint64_t size = 0;
    NativeError e = MapRegistry::Get().Map(is_path ? -1 : static_cast<int>(fdnum), path, static_cast<unsigned>(flags), &id, &size);
    if (e.failed) return Throw(env, e);
    Napi::Object o = Napi::Object::New(env);
    o.Set("mapId", Napi::Number::New(env, id));
    o.Set("size", Napi::Number::New(env, static_cast<double>(size)));
    return o;
  }

  Napi::Value UnmapFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    unsigned id;
    if (!SlabId(info, 0, &id)) return BadArg(env, "mapId");
    NativeError e = MapRegistry::Get().Release(id);
    if (e.failed) return Throw(env, e);
    return env.Undefined();
  }

  // copyRunsFromMap(mapId, runs: Float64Array, count, target: slabId | Uint8Array) -> bytes copied.
  // Run i is runs[3i..3i+2] = [fileOffset, targetOffset, length]. Every run is checked against the
  // mapping and the target before the first byte is copied; a bad run is GPUFEED_INVALID_OPTION
  // naming its index. A fault reading the mapping (the file was truncated after it was mapped)
  // or a file found shorter after the copy is GPUFEED_SHARD_CORRUPT with run / fileOffset /
  // signal: the target then holds partial data, to be discarded.
  Napi::Value CopyRunsFromMap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    unsigned map_id;
    if (!SlabId(info, 0, &map_id)) return BadArg(env, "mapId");
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      return BadArg(env, "runs (not a Float64Array)");
    }
    Napi::Float64Array runs = info[1].As<Napi::Float64Array>();
    uint64_t count;
    if (!U64(info, 2, &count) || count > runs.ElementLength() / 3) return BadArg(env, "count");
    bool to_slab = info.Length() > 3 && info[3].IsNumber();
    unsigned id = 0;
    uint8_t* ptr = nullptr;
    size_t bytes = 0;
    Registry& reg = Registry::Get();
    if (to_slab) {
      if (!SlabId(info, 3, &id)) return BadArg(env, "slabId");
    } else if (info.Length() > 3 && info[3].IsTypedArray() && info[3].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
      Napi::Uint8Array t = info[3].As<Napi::Uint8Array>();
      ptr = t.Data();
      bytes = t.ByteLength();
    } else {
      return BadArg(env, "target (a slab id or a Uint8Array)");
    }
    MapRegistry& maps = MapRegistry::Get();
    MapRegistry::Pin pin;
    NativeError e = maps.Acquire(map_id, &pin);
    if (e.failed) return Throw(env, e);
    if (to_slab) {
      e = reg.Acquire(id, &ptr, &bytes);  // keeps the slab mapped while we copy
      if (e.failed) {
        maps.Unref(pin);
        return Throw(env, e);
      }
    }
    // The runs are read before any byte is written: the target may alias the runs' buffer.
    const double* r = runs.Data();
    std::string where = to_slab ? "slab " + std::to_string(id) : std::string("the target buffer");
    for (uint64_t i = 0; i < count && !e.failed; i++) {
      const double* v = r + 3 * i;
      bool ok = true;
      for (int k = 0; k < 3 && ok; k++) ok = v[k] >= 0 && v[k] <= kMaxSafe && std::floor(v[k]) == v[k];
      if (!ok) {
        e = NativeError::Invalid(id, "run " + std::to_string(i) + ": fileOffset, targetOffset and length must be non-negative safe integers");
        break;
      }
      uint64_t foff = static_cast<uint64_t>(v[0]), toff = static_cast<uint64_t>(v[1]), len = static_cast<uint64_t>(v[2]);
      if (foff > pin.size || len > pin.size - foff) {
        e = NativeError::Invalid(id, "run " + std::to_string(i) + ": file range [" + std::to_string(foff) + ", +" + std::to_string(len) + ") is outside file map " + std::to_string(map_id) + " (" + std::to_string(pin.size) + " bytes)");
      } else if (toff > bytes || len > bytes - toff) {
        e = NativeError::Invalid(id, "run " + std::to_string(i) + ": range [" + std::to_string(toff) + ", +" + std::to_string(len) + ") is outside " + where + " (" + std::to_string(bytes) + " bytes)");
      }
    }
    uint64_t total = 0;
    if (!e.failed) {
      // A private copy of the runs only when the target overlaps them (a view of the same memory).
      std::vector<double> copy;
      const uint8_t* rb = reinterpret_cast<const uint8_t*>(r);
      if (rb + 24 * count > ptr && rb < ptr + bytes) {
        copy.assign(r, r + 3 * count);
        r = copy.data();
      }
      static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
      MapGather g{ptr, pin.ptr, r, count, pin.size, page};
      GuardFault fault;
      bool ran = RunGuarded(pin.ptr, pin.size, &MapGather::Run, &g, &fault);
      if (!ran && !g.probing) {
        const double* v = r + 3 * g.current;
        uint64_t at = fault.address - reinterpret_cast<uintptr_t>(pin.ptr);
        e = NativeError::Corrupt(static_cast<int64_t>(g.current), static_cast<int64_t>(at), SignalName(fault.signal),
                                 "file map " + std::to_string(map_id) + ": " + SignalName(fault.signal) + " reading byte " + std::to_string(at) + " (run " + std::to_string(g.current) + ", [" +
                                     std::to_string(static_cast<uint64_t>(v[0])) + ", +" + std::to_string(static_cast<uint64_t>(v[2])) + ")) of a " + std::to_string(pin.size) +
                                     "-byte mapping: the file was truncated after it was mapped, or its storage failed");
      } else if (int64_t now = (!ran || g.check_size) ? MapRegistry::Shrunk(pin, g.end) : -1; now >= 0) {
        // Bytes past the new end in its last page read as zeros without a fault: the copy is void.
        e = NativeError::Corrupt(-1, now, nullptr,
                                 "file map " + std::to_string(map_id) + ": the file shrank to " + std::to_string(now) + " bytes after it was mapped (" + std::to_string(pin.size) +
                                     " bytes); the runs read up to byte " + std::to_string(g.end));
      } else {
        total = g.total;
      }
    }
    if (to_slab) reg.Unref(id);
    maps.Unref(pin);
    if (e.failed) return Throw(env, e);
    return Napi::Number::New(env, static_cast<double>(total));
  }

  // mapStatus() -> { handles, mappings, bytes }: file maps of the whole process.
  Napi::Value MapStatus(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    MapStats st = MapRegistry::Get().Stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("handles", Napi::Number::New(env, static_cast<double>(st.handles)));
    o.Set("mappings", Napi::Number::New(env, static_cast<double>(st.mappings)));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(st.bytes)));
    return o;
  }

  // crc32FromMap(mapId, offset, length) -> zlib's crc32 of that range of the mapping, read in place
  // under the fault guard (map-hash.h).
  Napi::Value Crc32FromMap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    unsigned map_id;
    uint64_t offset, length;
    if (!SlabId(info, 0, &map_id)) return BadArg(env, "mapId");
    if (!U64(info, 1, &offset)) return BadArg(env, "offset");
    if (!U64(info, 2, &length)) return BadArg(env, "length");
    uint32_t crc = 0;
    NativeError e = HashMapRange(map_id, offset, length, Crc32Impl(Crc32Kind::kAuto), &crc);
    if (e.failed) return Throw(env, e);
    return Napi::Number::New(env, crc);
  }

  // crc32(bytes: Uint8Array, seed = 0, kind = 0) -> zlib's crc32(seed, bytes); kind picks an
  // implementation (crc32.h: 0 the fastest, 1 table, 2 pclmul, 3 avx512, 4 avx2), for the tests.
  Napi::Value Crc32(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) return BadArg(env, "bytes (not a Uint8Array)");
    uint64_t seed = 0, kind = 0;
    if (info.Length() > 1 && !info[1].IsUndefined() && (!U64(info, 1, &seed) || seed > 0xffffffffu)) return BadArg(env, "seed");
    if (info.Length() > 2 && !info[2].IsUndefined() && (!U64(info, 2, &kind) || kind > 4)) return BadArg(env, "kind");
    Crc32Fn fn = Crc32Impl(static_cast<Crc32Kind>(kind));
    if (fn == nullptr) return Throw(env, NativeError::Invalid(0, "crc32 implementation " + std::to_string(kind) + " does not run on this CPU"));
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    return Napi::Number::New(env, fn(static_cast<uint32_t>(seed), bytes.Data(), bytes.ByteLength()));
  }

  // crc32Kind() -> the implementation crc32 and crc32FromMap use on this CPU.
  Napi::Value Crc32KindName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), Crc32AutoName()); }

  // jpegCropAvailable() -> whether the addon was built with libjpeg (the JPEG fast path).
  Napi::Value JpegCropAvailableFn(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), JpegCropAvailable()); }

  // jpegCropResize(input, dst, width, height, left, top, boxWidth, boxHeight, size, flags, maxDenom,
  // denomGap) -> the DCT scaling denominator used (1, 2, 4, 8), or 0 when the image is not one
  // this path decodes (the caller uses sharp). flags: 1 flip, 2 CHW. Throws code GPUFEED_BAD_INPUT
  // with libjpeg's message when the data does not decode. src/transforms/jpeg-fast.ts validates.
  Napi::Value JpegCropResizeFn(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 12) return BadArg(env, "count (jpegCropResize takes 12)");
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) return BadArg(env, "input (not a Uint8Array)");
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) return BadArg(env, "dst (not a Uint8Array)");
    uint32_t v[10];
    for (size_t i = 0; i < 10; i++) {
      uint64_t x;
      if (!U64(info, i + 2, &x) || x > 0xffffffffu) return BadArg(env, "jpegCropResize number");
      v[i] = static_cast<uint32_t>(x);
    }
    Napi::Uint8Array input = info[0].As<Napi::Uint8Array>();
    Napi::Uint8Array dst = info[1].As<Napi::Uint8Array>();
    JpegCropRequest req;
    req.data = input.Data();
    req.size = input.ByteLength();
    req.width = v[0];
    req.height = v[1];
    req.left = v[2];
    req.top = v[3];
    req.box_width = v[4];
    req.box_height = v[5];
    req.out = v[6];
    req.flip = (v[7] & 1) != 0;
    req.chw = (v[7] & 2) != 0;
    req.max_denom = v[8];
    req.denom_gap = v[9];
    JpegCropResult r = JpegCropResize(req, dst.Data(), dst.ByteLength());
    if (r.status == JpegCropStatus::kOk) return Napi::Number::New(env, r.denom);
    if (r.status == JpegCropStatus::kUnsupported) return Napi::Number::New(env, 0);
    Napi::Error err = Napi::Error::New(env, r.message.empty() ? std::string("libjpeg: the data does not decode") : "libjpeg: " + r.message);
    err.Set("code", Napi::String::New(env, "GPUFEED_BAD_INPUT"));
    err.ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // claimOnce(key) -> true the first time in this process, across all threads: the TS wrapper
  // uses it to warn once per process rather than once per worker.
  Napi::Value ClaimOnce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) return BadArg(env, "key");
    static std::mutex* mu = new std::mutex();
    static std::set<std::string>* claimed = new std::set<std::string>();
    std::lock_guard<std::mutex> lock(*mu);
    return Napi::Boolean::New(env, claimed->insert(info[0].As<Napi::String>().Utf8Value()).second);
  }
};

}  // namespace
}  // namespace gpufeed

// The macro pastes the name into an identifier, so it needs an unqualified one.
using GpufeedAddon = gpufeed::Addon;
NODE_API_ADDON(GpufeedAddon)
