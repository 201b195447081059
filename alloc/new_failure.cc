// operator new's failure protocol; see new_failure.h. Compiled with
// exceptions (it catches a new-handler's), and the only such file of the
// allocator: every C++ runtime symbol it uses is declared weak below, so
// that linking it does not make libstrata.so need libstdc++.
#include "alloc/new_failure.h"

#include <dlfcn.h>

#include <cstddef>

#include "alloc/error.h"
#include "alloc/strata.h"

using NewHandler = void (*)();

// The C++ runtime's entry points, by their mangled names (so that no header
// declares them strongly). Weak: each resolves to the program's runtime
// when one is loaded with the program, and to null otherwise.
extern "C" {
__attribute__((weak)) NewHandler strata_cxx_get_new_handler() noexcept __asm__("_ZSt15get_new_handlerv");
__attribute__((weak, noreturn)) void strata_cxx_throw_bad_alloc() __asm__("_ZSt17__throw_bad_allocv");
// What the compiler calls for the catch in CallCatching(), the personality
// routine its unwind tables name: each runs only while an exception is in
// flight, so only in a process that has them.
__attribute__((weak)) void* __cxa_begin_catch(void*) noexcept;
__attribute__((weak)) void __cxa_end_catch();
__attribute__((weak)) int __gxx_personality_v0(...);
}

namespace strata::internal {
namespace {

// The C++ runtime of a program that loaded it after strata (a C program
// dlopening C++ code): looked for where a local dlopen leaves it too.
void* FindLate(const char* name) {
  if (void* f = dlsym(RTLD_DEFAULT, name)) return f;
  static constexpr const char* kRuntimes[] = {"libstdc++.so.6", "libc++.so.1"};
  for (const char* lib : kRuntimes) {
    // RTLD_NOLOAD: a handle only to a library already loaded.
    if (void* h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD)) {
      void* f = dlsym(h, name);
      dlclose(h);
      if (f != nullptr) return f;
    }
  }
  return nullptr;
}

NewHandler CurrentNewHandler() {
  if (&strata_cxx_get_new_handler != nullptr) return strata_cxx_get_new_handler();
  auto get = reinterpret_cast<NewHandler (*)() noexcept>(FindLate("_ZSt15get_new_handlerv"));
  return get != nullptr ? get() : nullptr;
}

[[noreturn]] void ThrowBadAlloc(size_t size) {
  if (&strata_cxx_throw_bad_alloc != nullptr) strata_cxx_throw_bad_alloc();
  void* f = FindLate("_ZSt17__throw_bad_allocv");     // libstdc++
  if (f == nullptr) f = FindLate("_ZNSt3__117__throw_bad_allocEv");  // libc++
  if (f != nullptr) reinterpret_cast<void (*)()>(f)();
  ReportFatal("operator new: out of memory (", size,
              " bytes), and no C++ runtime is loaded to throw std::bad_alloc");
}

// Calls handler; false when it threw. Only where the catch can work: with
// no C++ runtime loaded with the program, the personality routine is null.
bool CallCatching(NewHandler handler) noexcept {
  try {
    handler();
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

void* NewFailed(size_t size, size_t align, bool nothrow) {
  for (;;) {
    void* p = align == 0 ? strata::Allocate(size) : strata::AllocateAligned(align, size);
    if (p != nullptr) return p;
    NewHandler handler = CurrentNewHandler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      ThrowBadAlloc(size);
    }
    if (!nothrow) {
      handler();  // its exception (std::bad_alloc, by contract) is the caller's
    } else if (&__gxx_personality_v0 == nullptr || !CallCatching(handler)) {
      // A handler that throws means "give up"; so does one we could not
      // call under a catch (a C++ runtime loaded after strata).
      return nullptr;
    }
  }
}

}  // namespace strata::internal
