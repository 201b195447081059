// A consumer of an installed strata: shows whose malloc the program got.
// argv[1] is what the build promised: "strata" (linked to libstrata.so, or
// libstrata.a whole through strata::override) or "libc" (the API alone from
// libstrata.a: strata_malloc is strata's, malloc stays the C library's).
// Exit status 0 when the promise holds.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <strata/options.h>
#include <strata/profile.h>
#include <strata/stats.h>
#include <strata/strata.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const int want_strata = strcmp(argv[1], "strata") == 0;
  void* p = malloc(100);
  void* q = strata_malloc(100);
  const int malloc_is_strata = strata_owns(p);
  printf("malloc(100) = %p, strata's: %s; strata_malloc(100) = %p, strata's: %s\n", p,
         malloc_is_strata ? "yes" : "no", q, strata_owns(q) ? "yes" : "no");
  if (!strata_owns(q)) return 1;
  // The statistics see the allocations: strata's live bytes include q.
  strata::Stats stats;
  strata::GetStats(&stats);
  printf("strata live bytes: %llu\n", static_cast<unsigned long long>(stats.live_bytes));
  if (stats.live_bytes < 100) return 1;
  // And operator new is strata's exactly when malloc is.
  int* n = new int(7);
  const bool new_is_strata = strata_owns(n);
  delete n;
  if (new_is_strata != static_cast<bool>(malloc_is_strata)) return 1;
  char value[64];
  if (strata_option_get("profile_sample_bytes", value, sizeof(value)) != 0) return 1;
  free(p);
  strata_free(q);
  return malloc_is_strata == want_strata ? 0 : 1;
}
