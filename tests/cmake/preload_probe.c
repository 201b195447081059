/* A plain C program that knows nothing of strata, for tests/cmake/run.sh to
   preload strata's libraries into.
     preload_probe clean        mallocs 20 blocks of 40 bytes, writes them,
                                frees them all and says so: exit status 0.
     preload_probe double-free  mallocs the same 20 blocks, frees block 3,
                                then blocks 4..19, then block 3 again.
   The second free of block 3 comes after 16 other frees of its size, so the
   block is no longer at the head of its free list: the checked build reports
   it ("strata: free(0x...): double free") and aborts; the default build only
   catches the immediate double free, and this misuse is undefined there
   (run.sh does not run it there). If the program gets past it, it says so
   and exits 0, which run.sh counts as a failure.
   Built with -O0 -fno-builtin so that every malloc and free reaches the
   preloaded library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kBlocks = 20, kSize = 40 };

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const int double_free = strcmp(argv[1], "double-free") == 0;
  if (!double_free && strcmp(argv[1], "clean") != 0) return 2;
  void* volatile blocks[kBlocks];
  for (int i = 0; i < kBlocks; i++) {
    blocks[i] = malloc(kSize);
    if (blocks[i] == NULL) return 1;
    memset(blocks[i], i, kSize);
  }
  if (!double_free) {
    for (int i = 0; i < kBlocks; i++) free(blocks[i]);
    printf("freed %d blocks\n", kBlocks);
    return 0;
  }
  free(blocks[3]);
  for (int i = 4; i < kBlocks; i++) free(blocks[i]);
  free(blocks[3]);
  printf("the double free of block 3 went unreported\n");
  return 0;
}
