"""The two builds of the allocator from one source (design.md item 11).

Every library in alloc/ is declared once with strata_cc_library and comes in
two builds:
  - NAME: the default build, whose paths check only what costs nothing extra;
  - NAME_checked: the checked build, compiled with STRATA_CHECKED=1, which
    keeps the whole misuse contract (alloc/checks.h says which check each
    build makes).
A checked library depends only on checked libraries: its deps inside alloc/
are mapped to their _checked twins, so a binary is wholly one build or the
other (checks.cc makes a binary that mixes them fail to link).

Tests and tools choose a build with strata_build_deps (or the _checked
targets by name); strata_cc_test declares one test per build.
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")

# The builds: target-name suffix -> the defines of its objects.
BUILDS = {
    "": [],
    "_checked": ["STRATA_CHECKED=1"],
}

# //alloc labels that are not libraries built twice.
_NOT_VARIANT = [
    "//alloc:BUILD.bazel",
    "//alloc:all_sources",
    "//alloc:libstrata_static",
    "//alloc:libstrata_checked_static",
    "//alloc:libstrata.so",
    "//alloc:libstrata_checked.so",
]

def _variant_label(label, suffix, local_variants):
    """The label of LABEL's twin in the build SUFFIX names."""
    if suffix == "" or label in _NOT_VARIANT:
        return label
    if label.startswith("//alloc:") or label in local_variants:
        return label + suffix
    return label

def strata_build_deps(deps, build = "", local_variants = []):
    """DEPS with every //alloc library (and each of LOCAL_VARIANTS, labels
    of this package's own twin libraries) taken from the build BUILD names
    ("" or "_checked")."""
    return [_variant_label(d, build, local_variants) for d in deps]

def _local_deps(deps):
    return [d for d in deps if d.startswith(":")]

def strata_cc_library(name, deps = [], defines = [], **kwargs):
    """A cc_library of alloc/ in both builds: NAME and NAME_checked."""
    for suffix, build_defines in BUILDS.items():
        cc_library(
            name = name + suffix,
            # Every library of the package the macro is used in is a twin.
            deps = strata_build_deps(deps, suffix, _local_deps(deps)),
            # Propagated: whatever depends on a checked library (a test, a
            # tool) compiles alloc/'s headers the checked way too.
            defines = defines + build_defines,
            **kwargs
        )

def strata_cc_binary(name, deps = [], **kwargs):
    """A cc_binary of alloc/ in both builds; NAME may end in .so, the twin's suffix goes before it."""
    for suffix in BUILDS:
        if name.endswith(".so"):
            twin = name[:-len(".so")] + suffix + ".so"
        else:
            twin = name + suffix
        cc_binary(
            name = twin,
            deps = strata_build_deps(deps, suffix, _local_deps(deps)),
            **kwargs
        )

def strata_cc_test(name, deps = [], builds = ["", "_checked"], local_variants = [], **kwargs):
    """One cc_test per build in BUILDS: NAME (default build), NAME_checked.
    LOCAL_VARIANTS: labels of this package's strata_cc_library twins."""
    for suffix in builds:
        cc_test(
            name = name + suffix,
            deps = strata_build_deps(deps, suffix, local_variants),
            **kwargs
        )
