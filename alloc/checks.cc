// The build's tag (checks.h): a binary links objects of one build only.
#include "alloc/checks.h"

extern "C" {
#if STRATA_CHECKED
const char strata_build_checked = 1;
#else
const char strata_build_default = 0;
#endif
// Defined by both builds' checks.o: a link that pulls in both fails here.
extern const char strata_one_build_per_binary;
const char strata_one_build_per_binary = STRATA_CHECKED;
}
