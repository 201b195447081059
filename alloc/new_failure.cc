// operator new's failure protocol; see new_failure.h. Compiled with
// exceptions (it catches a new-handler's), and the only such file of the
// allocator: every C++ runtime symbol it uses is declared weak below, so
// that linking it does not make libstrata.so need libstdc++.
#include "alloc/new_failure.h"

#include <dlfcn.h>
#include <link.h>

#include <cstddef>
#include <cstring>

#include "alloc/config.h"
#include "alloc/error.h"
#include "alloc/strata.h"

using NewHandler = void (*)();

// The C++ runtime's entry points, by their mangled names (so that no header
// declares them). In libstrata.so (STRATA_CXX_RUNTIME_WEAK) they are weak:
// each resolves to the program's runtime when one is loaded with the
// program, and to null otherwise. Linked into a program (the static archive,
// Bazel's malloc attribute), they are strong: a weak reference pulls no
// member out of a static libstdc++, and such a program is C++ anyway.
#ifdef STRATA_CXX_RUNTIME_WEAK
#define STRATA_CXX_RUNTIME_REF __attribute__((weak))
#else
#define STRATA_CXX_RUNTIME_REF
#endif
extern "C" {
STRATA_CXX_RUNTIME_REF NewHandler strata_cxx_get_new_handler() noexcept __asm__("_ZSt15get_new_handlerv");
[[noreturn]] STRATA_CXX_RUNTIME_REF void strata_cxx_throw_bad_alloc() __asm__("_ZSt17__throw_bad_allocv");
// What the compiler calls for the catch in CallCatching(), the personality
// routine its unwind tables name: each runs only while an exception is in
// flight, so only in a process that has them.
STRATA_CXX_RUNTIME_REF void* __cxa_begin_catch(void*) noexcept;
STRATA_CXX_RUNTIME_REF void __cxa_end_catch();
STRATA_CXX_RUNTIME_REF int __gxx_personality_v0(...);
}

namespace strata::internal {
namespace {

// Whether a runtime entry point resolved (always, when linked strongly).
bool Present(const void* f) { return f != nullptr; }

// The loaded object after the first `skip` ones (the main program
// excluded), its path copied into `path`; false past the last. One object
// per walk, so that dlopen is never called under dl_iterate_phdr's lock.
bool LoadedObject(size_t skip, char (&path)[512]) {
  struct Walk {
    size_t skip;
    char* path;
    bool found;
  } walk{skip, path, false};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* w = static_cast<Walk*>(data);
        const char* name = info->dlpi_name;
        if (name == nullptr || name[0] == '\0') return 0;  // the main program
        if (w->skip-- != 0) return 0;
        const size_t n = strnlen(name, 511);
        memcpy(w->path, name, n);
        w->path[n] = '\0';
        w->found = true;
        return 1;
      },
      &walk);
  return walk.found;
}

// Whether p lies in libstrata itself (whose operator new must not be
// called back).
bool IsOurs(const void* p) {
  Dl_info mine, theirs;
  if (dladdr(reinterpret_cast<const void*>(&NewFailed), &mine) == 0) return false;
  return dladdr(p, &theirs) != 0 && theirs.dli_fbase == mine.dli_fbase;
}

// Symbol `name` of library `lib` when that library is loaded already and the
// symbol is not strata's own; else null.
void* ForeignSymbolOf(const char* lib, const char* name) {
  // RTLD_NOLOAD: a handle only to a library already loaded.
  void* h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
  if (h == nullptr) return nullptr;
  void* f = dlsym(h, name);
  dlclose(h);
  return f != nullptr && !IsOurs(f) ? f : nullptr;
}

// An operator new of a C++ runtime loaded after strata, by mangled name:
// in the global scope (a C program that dlopened C++ code), in a shared
// runtime a local dlopen brought in, or in any loaded object that exports
// one (a plugin linked with its own static libstdc++, loaded RTLD_LOCAL).
// Never strata's own. Slow, and may allocate: for the failure path only.
void* FindForeignNew(const char* name) {
  if (void* f = dlsym(RTLD_DEFAULT, name); f != nullptr && !IsOurs(f)) return f;
  static constexpr const char* kRuntimes[] = {"libstdc++.so.6", "libc++.so.1"};
  for (const char* lib : kRuntimes) {
    if (void* f = ForeignSymbolOf(lib, name)) return f;
  }
  char path[512];
  for (size_t i = 0; i < 4096 && LoadedObject(i, path); ++i) {
    if (void* f = ForeignSymbolOf(path, name)) return f;
  }
  return nullptr;
}

// No C++ runtime came with the program, yet C++ code called operator new
// (it was loaded later). That runtime's own operator new runs the protocol
// with its own new-handler and exception; its retries come back to strata
// through malloc. Without one, nothing could catch std::bad_alloc.
void* NewThroughLateRuntime(size_t size, size_t align, bool nothrow) {
  static const char kNothrowTag = 0;  // a std::nothrow_t: empty, passed by reference
  if (align == 0) {
    if (nothrow) {
      if (void* f = FindForeignNew("_ZnwmRKSt9nothrow_t")) {
        return reinterpret_cast<void* (*)(size_t, const void*)>(f)(size, &kNothrowTag);
      }
      return nullptr;
    }
    if (void* f = FindForeignNew("_Znwm")) return reinterpret_cast<void* (*)(size_t)>(f)(size);
  } else {
    if (nothrow) {
      if (void* f = FindForeignNew("_ZnwmSt11align_val_tRKSt9nothrow_t")) {
        return reinterpret_cast<void* (*)(size_t, size_t, const void*)>(f)(size, align, &kNothrowTag);
      }
      return nullptr;
    }
    if (void* f = FindForeignNew("_ZnwmSt11align_val_t")) {
      return reinterpret_cast<void* (*)(size_t, size_t)>(f)(size, align);
    }
  }
  ReportFatal("operator new: out of memory (", size,
              " bytes), and no C++ runtime is loaded to throw std::bad_alloc");
}

// Calls handler; false when it threw.
bool CallCatching(NewHandler handler) noexcept {
  try {
    handler();
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

STRATA_ENTRY void* NewFailed(size_t size, size_t align, bool nothrow) {
  // The program's runtime, when it came with the program (always, when
  // linked strongly); otherwise the one loaded since, found by name.
  if (!Present(reinterpret_cast<const void*>(&strata_cxx_get_new_handler)) ||
      !Present(reinterpret_cast<const void*>(&strata_cxx_throw_bad_alloc)) ||
      !Present(reinterpret_cast<const void*>(&__gxx_personality_v0))) {
    return NewThroughLateRuntime(size, align, nothrow);
  }
  for (;;) {
    void* p = align == 0 ? strata::Allocate(size) : strata::AllocateAligned(align, size);
    if (p != nullptr) return p;
    NewHandler handler = strata_cxx_get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      strata_cxx_throw_bad_alloc();
    }
    if (!nothrow) {
      handler();  // its exception (std::bad_alloc, by contract) is the caller's
    } else if (!CallCatching(handler)) {
      return nullptr;  // a handler that throws means "give up"
    }
  }
}

}  // namespace strata::internal
