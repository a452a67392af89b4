/* A stand-in for libcuda.so.1, for tests on machines without a GPU: it lets the dlopen path run
 * end to end. Logs each registration to stderr; FAKE_CUDA_FAIL=1 makes registration fail. */
#include <stdio.h>
#include <stdlib.h>

typedef int CUresult;
static int ctx_dummy;

CUresult cuInit(unsigned flags) { (void)flags; return 0; }
CUresult cuDeviceGet(int* dev, int ordinal) { *dev = ordinal; return 0; }
CUresult cuDevicePrimaryCtxRetain(void** ctx, int dev) { (void)dev; *ctx = &ctx_dummy; return 0; }
CUresult cuCtxPushCurrent_v2(void* ctx) { return ctx == &ctx_dummy ? 0 : 201; }
CUresult cuCtxPopCurrent_v2(void** ctx) { if (ctx) *ctx = &ctx_dummy; return 0; }
CUresult cuMemHostRegister_v2(void* p, size_t n, unsigned flags) {
  const char* fail = getenv("FAKE_CUDA_FAIL");
  if (fail && fail[0] == '1') return 2; /* CUDA_ERROR_OUT_OF_MEMORY */
  fprintf(stderr, "fake-cuda register %zu flags=%u\n", n, flags);
  (void)p;
  return 0;
}
CUresult cuMemHostUnregister(void* p) { (void)p; fprintf(stderr, "fake-cuda unregister\n"); return 0; }
CUresult cuGetErrorName(CUresult r, const char** s) {
  *s = r == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : "CUDA_ERROR_UNKNOWN";
  return 0;
}
