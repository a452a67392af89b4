#include "pinning.h"

#include <dlfcn.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace gpufeed {

namespace {

// The subset of the CUDA driver API we call, declared by hand so that the build needs no CUDA
// headers. Values and signatures are stable parts of the driver ABI.
typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st* CUcontext;
constexpr CUresult CUDA_SUCCESS = 0;
constexpr unsigned CU_MEMHOSTREGISTER_PORTABLE = 0x01;

struct CudaApi {
  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice*, int) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*cuCtxPushCurrent)(CUcontext) = nullptr;
  CUresult (*cuCtxPopCurrent)(CUcontext*) = nullptr;
  CUresult (*cuMemHostRegister)(void*, size_t, unsigned) = nullptr;
  CUresult (*cuMemHostUnregister)(void*) = nullptr;
  CUresult (*cuGetErrorName)(CUresult, const char**) = nullptr;  // optional
  CUcontext ctx = nullptr;
  CudaStatus status;
};

CudaApi& Api() {
  // Never destroyed: worker threads may still unpin while the process runs static destructors.
  static CudaApi* api = new CudaApi();
  return *api;
}

std::string CuErr(const CudaApi& api, const char* call, CUresult r) {
  const char* name = nullptr;
  if (api.cuGetErrorName && api.cuGetErrorName(r, &name) == CUDA_SUCCESS && name) {
    return std::string(call) + ": " + name;
  }
  return std::string(call) + ": CUresult " + std::to_string(r);
}

template <typename T>
bool Sym(void* lib, const char* name, T* out) {
  *out = reinterpret_cast<T>(dlsym(lib, name));
  return *out != nullptr;
}

void InitCuda(CudaApi& api) {
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    api.status.error = std::string("dlopen libcuda.so.1: ") + (e ? e : "failed");
    return;
  }
  // The library stays open for the life of the process: registered memory refers to it.
  if (!Sym(lib, "cuInit", &api.cuInit) || !Sym(lib, "cuDeviceGet", &api.cuDeviceGet) ||
      !Sym(lib, "cuDevicePrimaryCtxRetain", &api.cuDevicePrimaryCtxRetain) ||
      !Sym(lib, "cuCtxPushCurrent_v2", &api.cuCtxPushCurrent) ||
      !Sym(lib, "cuCtxPopCurrent_v2", &api.cuCtxPopCurrent) ||
      !Sym(lib, "cuMemHostRegister_v2", &api.cuMemHostRegister) ||
      !Sym(lib, "cuMemHostUnregister", &api.cuMemHostUnregister)) {
    api.status.error = "libcuda.so.1 lacks a required entry point";
    return;
  }
  Sym(lib, "cuGetErrorName", &api.cuGetErrorName);
  CUresult r = api.cuInit(0);
  if (r != CUDA_SUCCESS) {
    api.status.error = CuErr(api, "cuInit", r);
    return;
  }
  CUdevice dev = 0;
  if ((r = api.cuDeviceGet(&dev, 0)) != CUDA_SUCCESS) {
    api.status.error = CuErr(api, "cuDeviceGet(0)", r);
    return;
  }
  // Retained, never released: the primary context is shared with any other CUDA user in the
  // process (and PORTABLE registrations stay valid for every context).
  if ((r = api.cuDevicePrimaryCtxRetain(&api.ctx, dev)) != CUDA_SUCCESS) {
    api.status.error = CuErr(api, "cuDevicePrimaryCtxRetain", r);
    return;
  }
  api.status.available = true;
}

CudaApi& ReadyApi() {
  static std::once_flag once;
  CudaApi& api = Api();
  std::call_once(once, [&api] { InitCuda(api); });
  return api;
}

// Registration needs a current context on the calling thread; push/pop leaves the thread's own
// context (if some other library set one) as it was.
CUresult WithContext(CudaApi& api, void* ptr, size_t bytes, bool reg) {
  CUresult r = api.cuCtxPushCurrent(api.ctx);
  if (r != CUDA_SUCCESS) return r;
  r = reg ? api.cuMemHostRegister(ptr, bytes, CU_MEMHOSTREGISTER_PORTABLE) : api.cuMemHostUnregister(ptr);
  CUcontext popped = nullptr;
  api.cuCtxPopCurrent(&popped);
  return r;
}

}  // namespace

const char* KindName(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::kCuda: return "cuda";
    case MemoryKind::kMlock: return "mlock";
    default: return "pageable";
  }
}

CudaStatus ProbeCuda() { return ReadyApi().status; }

PinResult Pin(void* ptr, size_t bytes, PinMode mode) {
  PinResult out;
  if (mode == PinMode::kNone) return out;
  if (mode == PinMode::kCuda) {
    CudaApi& api = ReadyApi();
    if (api.status.available) {
      CUresult r = WithContext(api, ptr, bytes, true);
      if (r == CUDA_SUCCESS) {
        out.kind = MemoryKind::kCuda;
        return out;
      }
      out.cuda_error = CuErr(api, "cuMemHostRegister", r);
    }  // no driver: memoryStatus() says why, once, rather than every slab
  }
  if (mlock(ptr, bytes) == 0) {
    out.kind = MemoryKind::kMlock;
    return out;
  }
  int err = errno;
  munlock(ptr, bytes);  // a partial lock is possible on some kernels; leave nothing locked
  out.error = std::string("mlock: ") + strerror(err) + (err == ENOMEM || err == EPERM ? " (RLIMIT_MEMLOCK / CAP_IPC_LOCK)" : "");
  return out;
}

void Unpin(void* ptr, size_t bytes, MemoryKind kind) {
  if (kind == MemoryKind::kCuda) {
    WithContext(Api(), ptr, bytes, false);
  } else if (kind == MemoryKind::kMlock) {
    munlock(ptr, bytes);  // munmap would unlock too; explicit for clarity
  }
}

}  // namespace gpufeed
