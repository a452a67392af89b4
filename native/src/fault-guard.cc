#include "fault-guard.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace gpufeed {

namespace {

// One per guarded call, on RunGuarded's stack; the faulting thread finds its own through a
// thread-local pointer. initial-exec TLS: reading it in the handler is one load, with no lazy
// allocation (which could take malloc's lock in a thread that crashed inside malloc).
struct GuardState {
  sigjmp_buf env;
  uintptr_t lo = 0, hi = 0;
  volatile int signal = 0;
  volatile uintptr_t address = 0;
};
__attribute__((tls_model("initial-exec"))) thread_local GuardState* volatile tls_guard = nullptr;
// Guarded calls in progress, all threads: while 0, the handler chains without touching TLS.
std::atomic<int> g_armed{0};

struct sigaction g_prev_bus;
struct sigaction g_prev_segv;

// Hands a fault that is not ours to whoever handled it before us.
void Chain(int sig, siginfo_t* si, void* uc) {
  const struct sigaction& prev = sig == SIGBUS ? g_prev_bus : g_prev_segv;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction != nullptr) {
      prev.sa_sigaction(sig, si, uc);
      return;
    }
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  // Default action (an ignored synchronous fault cannot be ignored either): restore it. For a
  // hardware fault the instruction runs again on return and the kernel kills the process as it
  // would have without us; a signal sent with kill() does not recur, so it is raised again.
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  if (si == nullptr || si->si_code <= 0) raise(sig);
}

void Handler(int sig, siginfo_t* si, void* uc) {
  // si_code > 0: raised by the kernel for this access, not sent with kill().
  if (g_armed.load(std::memory_order_relaxed) > 0 && si != nullptr && si->si_code > 0) {
    GuardState* g = tls_guard;
    uintptr_t a = reinterpret_cast<uintptr_t>(si->si_addr);
    if (g != nullptr && a >= g->lo && a < g->hi) {
      tls_guard = nullptr;
      g->signal = sig;
      g->address = a;
      siglongjmp(g->env, 1);
    }
  }
  Chain(sig, si, uc);
}

std::string Install() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = Handler;
  // SA_ONSTACK: use the thread's alternate stack when it has one (a fault from stack overflow
  // must still reach the previous handler).
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &g_prev_bus) != 0) return std::string("sigaction(SIGBUS): ") + strerror(errno);
  if (sigaction(SIGSEGV, &sa, &g_prev_segv) != 0) {
    int err = errno;
    sigaction(SIGBUS, &g_prev_bus, nullptr);
    return std::string("sigaction(SIGSEGV): ") + strerror(err);
  }
  return std::string();
}

}  // namespace

const std::string& InstallFaultGuard() {
  static std::once_flag once;
  static std::string* error = new std::string();  // leaked: read by threads during exit
  std::call_once(once, [] { *error = Install(); });
  return *error;
}

bool RunGuarded(const void* lo, size_t bytes, void (*fn)(void*), void* ctx, GuardFault* fault) {
  GuardState g;
  g.lo = reinterpret_cast<uintptr_t>(lo);
  g.hi = g.lo + bytes;
  g_armed.fetch_add(1, std::memory_order_relaxed);
  // savemask 0: no sigprocmask per call; the one signal left blocked after a jump is unblocked below.
  if (sigsetjmp(g.env, 0) != 0) {
    g_armed.fetch_sub(1, std::memory_order_relaxed);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, g.signal);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    fault->signal = g.signal;
    fault->address = g.address;
    return false;
  }
  tls_guard = &g;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  fn(ctx);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tls_guard = nullptr;
  g_armed.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

const char* SignalName(int signal) {
  return signal == SIGBUS ? "SIGBUS" : signal == SIGSEGV ? "SIGSEGV" : "signal";
}

}  // namespace gpufeed
