// Guarded sampling through the preload (issue 25): each mode makes one
// mistake on a guarded block, which strata must report and die of by
// SIGSEGV (or, for the frees, report as misuse). Run by
// guarded_fault_test.sh with STRATA_GUARDED_SAMPLE_BYTES=1 (every
// allocation of at most a page guarded while slots are free), or with no
// guarding at start-up for the modes that turn it on through the API.
// Linked with -rdynamic so that dladdr names this program's functions in
// the report's stacks (AllocateVictim, FreeVictim, Touch*).
//
// Prints "block 0x... size N" (the guarded block) before its mistake.
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern "C" {

// The program's own functions the stacks must show. noinline and
// exported (-rdynamic), so that each is a frame with a name.
__attribute__((noinline)) char* AllocateVictim(size_t n) {
  char* p = static_cast<char*>(malloc(n));
  asm volatile("" ::: "memory");
  return p;
}
__attribute__((noinline)) void FreeVictim(char* p) {
  free(p);
  asm volatile("" ::: "memory");
}
__attribute__((noinline)) int TouchRead(volatile char* p) { return *p; }
__attribute__((noinline)) void TouchWrite(volatile char* p) { *p = 1; }

}  // extern "C"

namespace {

// A block that is guarded: placed against its page's end (strata's guarded
// slots), which no class block of this size is.
char* GuardedBlock(size_t n) {
  for (int tries = 0; tries < 1000; ++tries) {
    char* p = AllocateVictim(n);
    if ((reinterpret_cast<uintptr_t>(p) + ((n + 15) & ~size_t{15})) % 4096 == 0) {
      printf("block %p size %zu\n", static_cast<void*>(p), n);
      fflush(stdout);
      return p;
    }
  }
  fprintf(stderr, "guarded_fault: no guarded block in 1000 allocations\n");
  exit(2);
}

// strata's C API, found in the preloaded library.
int SetOption(const char* name, const char* value) {
  auto set = reinterpret_cast<int (*)(const char*, const char*)>(dlsym(RTLD_DEFAULT, "strata_option_set"));
  if (set == nullptr) {
    fprintf(stderr, "guarded_fault: strata_option_set not found (not preloaded?)\n");
    exit(2);
  }
  return set(name, value);
}

volatile sig_atomic_t g_handler_calls = 0;
char* g_own_page = nullptr;

// The program's own SIGSEGV handler: counts, and makes its own page
// accessible so that a fault there is recovered from.
void OwnHandler(int, siginfo_t* info, void*) {
  g_handler_calls = g_handler_calls + 1;
  static const char kMsg[] = "guarded_fault: program handler called\n";
  (void)!write(2, kMsg, sizeof(kMsg) - 1);
  if (g_own_page != nullptr && static_cast<char*>(info->si_addr) >= g_own_page &&
      static_cast<char*>(info->si_addr) < g_own_page + 4096) {
    mprotect(g_own_page, 4096, PROT_READ | PROT_WRITE);
  }
}

void InstallOwnHandler() {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = &OwnHandler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, nullptr);
}

int Run(const char* mode) {
  if (strcmp(mode, "uaf-read") == 0) {
    char* p = GuardedBlock(32);
    FreeVictim(p);
    return TouchRead(p + 8);
  }
  if (strcmp(mode, "uaf-write") == 0) {
    char* p = GuardedBlock(48);
    FreeVictim(p);
    TouchWrite(p + 40);
    return 0;
  }
  if (strcmp(mode, "overflow") == 0) {
    char* p = GuardedBlock(64);
    TouchWrite(p + 64);  // one past the end
    return 0;
  }
  if (strcmp(mode, "underflow") == 0) {
    char* p = GuardedBlock(4096);  // the whole page: the guard before it is next
    return TouchRead(p - 16);
  }
  if (strcmp(mode, "double-free") == 0) {
    char* p = GuardedBlock(24 + 8);
    FreeVictim(p);
    FreeVictim(p);
    printf("guarded_fault: second free returned\n");
    return 0;
  }
  if (strcmp(mode, "invalid-free") == 0) {
    char* p = GuardedBlock(80);
    FreeVictim(p + 16);
    printf("guarded_fault: invalid free returned\n");
    return 0;
  }
  if (strcmp(mode, "chain") == 0) {
    // The program's handler first, then guarding through the API: strata
    // chains to it. A fault of the program's own (its page) reaches its
    // handler unchanged, which recovers; then a guarded overflow is
    // reported, the program's handler sees it too, and the process dies.
    InstallOwnHandler();
    if (SetOption("guarded_sample_bytes", "1") != 0) return 2;
    char* p = GuardedBlock(16);
    g_own_page = static_cast<char*>(mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    TouchWrite(g_own_page + 100);
    printf("guarded_fault: recovered from own fault (%d handler calls)\n", static_cast<int>(g_handler_calls));
    fflush(stdout);
    TouchWrite(p + 16);
    return 0;
  }
  if (strcmp(mode, "fork") == 0) {
    // A child of a process with guarded blocks: its use after free is
    // reported by the child, which dies by SIGSEGV; the parent goes on.
    char* p = GuardedBlock(40);
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
      FreeVictim(p);
      TouchRead(p);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    const bool by_segv = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
    printf("guarded_fault: child %s\n", by_segv ? "died by SIGSEGV" : "did not die by SIGSEGV");
    p[0] = 7;  // the parent's block is still live
    FreeVictim(p);
    return by_segv ? 0 : 1;
  }
  fprintf(stderr, "guarded_fault: unknown mode %s\n", mode);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: guarded_fault MODE\n");
    return 2;
  }
  return Run(argv[1]);
}
