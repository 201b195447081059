// A C program (no C++ runtime until it dlopens C++ code): libstrata.so must
// not load libstdc++ into it, and a C++ plugin loaded later still gets
// std::bad_alloc from a failed new. Usage: host PLUGIN.so
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

static int Mapped(const char* name) {
  FILE* f = fopen("/proc/self/maps", "r");
  if (f == NULL) return -1;
  char line[512];
  int found = 0;
  while (fgets(line, sizeof line, f)) found |= strstr(line, name) != NULL;
  fclose(f);
  return found;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  if (Mapped("libstdc++") != 0) {
    printf("host: FAIL: libstdc++ is mapped before any C++ code is loaded\n");
    return 1;
  }
  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    printf("host: FAIL: %s\n", dlerror());
    return 1;
  }
  int (*throws)(void) = (int (*)(void))dlsym(h, "plugin_huge_new_throws");
  int (*works)(void) = (int (*)(void))dlsym(h, "plugin_new_works");
  int (*handler)(void) = (int (*)(void))dlsym(h, "plugin_nothrow_calls_handler");
  const int t = throws(), w = works(), n = handler();
  if (t != 1 || w != 7 || n != 1) {
    printf("host: FAIL: huge new gave %d (1: bad_alloc caught), new gave %d, nothrow new with a "
           "throwing handler gave %d (1: null, handler called once)\n", t, w, n);
    return 1;
  }
  printf("host: ok\n");
  return 0;
}
