// Guarded reads from file mappings. Touching a page of a mapped file past its current end (the
// file was truncated after it was mapped, or its storage failed) raises SIGBUS, which would kill
// the process. RunGuarded runs a copy with a process-wide SIGBUS/SIGSEGV handler armed for the
// calling thread and for one address range: a fault there jumps back out (siglongjmp) and
// RunGuarded returns false with the faulting address, so the caller returns an error for that
// read. Any other fault (another address, another thread, no guard armed) goes to the handler
// that was installed before ours, or to the default action, so real crashes still crash.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace gpufeed {

struct GuardFault {
  int signal = 0;        // SIGBUS or SIGSEGV
  uintptr_t address = 0;  // the faulting address, inside the guarded range
};

// Installs the handlers once per process (any thread may call it; later calls are free). Returns
// an empty string on success, else why sigaction failed.
const std::string& InstallFaultGuard();

// Runs fn(ctx) with faults at addresses in [lo, lo + bytes) turned into `return false` (with
// *fault filled). fn must only read the range and write memory it owns: it is abandoned
// mid-way on a fault, so it must hold no lock and allocate nothing. Not reentrant: fn must not
// call RunGuarded. InstallFaultGuard must have succeeded.
bool RunGuarded(const void* lo, size_t bytes, void (*fn)(void*), void* ctx, GuardFault* fault);

const char* SignalName(int signal);

}  // namespace gpufeed
