// operator new called where no C++ runtime exists (from C, found by name):
// nothing could catch std::bad_alloc, so a failure must print one line and
// abort rather than crash or return null.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int main(void) {
  void* (*op_new)(size_t) = (void* (*)(size_t))dlsym(RTLD_DEFAULT, "_Znwm");
  if (op_new == NULL) {
    printf("no_runtime: operator new not found\n");
    return 2;
  }
  volatile size_t huge = SIZE_MAX - 100;
  void* p = op_new(huge);
  printf("no_runtime: FAIL: operator new returned %p\n", p);
  return 1;
}
