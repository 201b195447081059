# strata's sources for the CMake build: the one list CMakeLists.txt reads.
# Bazel's BUILD files list the same files per library; tests/build_lists_test.sh
# fails when the two disagree (or a file on disk is in neither).

# The allocator: every alloc/*.cc but the drop-in, operator new's failure
# protocol (compiled twice) and the Abseil flags.
set(STRATA_CORE_SOURCES
  alloc/arena.cc
  alloc/checks.cc
  alloc/class_cache.cc
  alloc/class_runs.cc
  alloc/error.cc
  alloc/foreign_hook.cc
  alloc/fork.cc
  alloc/free_link.cc
  alloc/guarded.cc
  alloc/guarded_fault.cc
  alloc/heap.cc
  alloc/heap_profile.cc
  alloc/heap_registry.cc
  alloc/incoming_queue.cc
  alloc/init.cc
  alloc/large.cc
  alloc/limit.cc
  alloc/mapping_moves.cc
  alloc/meta_alloc.cc
  alloc/misuse.cc
  alloc/options.cc
  alloc/os.cc
  alloc/outgoing_batches.cc
  alloc/owned_arenas.cc
  alloc/page_map.cc
  alloc/profile.cc
  alloc/profile_triggers.cc
  alloc/reentry.cc
  alloc/release.cc
  alloc/release_budget.cc
  alloc/run.cc
  alloc/sampled_alloc.cc
  alloc/stack_trace.cc
  alloc/stats.cc
  alloc/stats_format.cc
  alloc/strata.cc
)

# The drop-in malloc/free/new/delete.
set(STRATA_OVERRIDE_SOURCES
  alloc/foreign.cc
  alloc/override.cc
)

# operator new's failure protocol: built weak into libstrata.so, strong into
# libstrata.a (see alloc/BUILD.bazel, new_failure and new_failure_weak).
set(STRATA_NEW_FAILURE_SOURCE alloc/new_failure.cc)

# --strata_* Abseil flags (optional: STRATA_BUILD_FLAGS).
set(STRATA_FLAGS_SOURCES alloc/flags.cc)

# Installed as include/strata/<name>.h; the alloc/ headers stats.h needs go
# to include/strata/alloc/.
set(STRATA_PUBLIC_HEADERS
  alloc/flags.h
  alloc/options.h
  alloc/profile.h
  alloc/stats.h
  alloc/strata.h
)
set(STRATA_PUBLIC_SUPPORT_HEADERS
  alloc/config.h
  alloc/heap_counter_list.h
  alloc/size_class.h
)

# GoogleTest unit tests (STRATA_BUILD_TESTS): the same files as Bazel's
# cc_tests of these folders, each in the builds Bazel runs it in.
# The default build's (Bazel's cc_test NAME, and strata_cc_test's NAME);
# flags_test needs STRATA_BUILD_FLAGS.
set(STRATA_TESTS
  tests/alloc/error_test.cc
  tests/alloc/guarded_fault_test.cc
  tests/alloc/guarded_test.cc
  tests/alloc/heap_parts_test.cc
  tests/alloc/heap_test.cc
  tests/alloc/init_test.cc
  tests/alloc/limit_rss_test.cc
  tests/alloc/limit_test.cc
  tests/alloc/mapping_moves_test.cc
  tests/alloc/options_test.cc
  tests/alloc/os_test.cc
  tests/alloc/page_map_test.cc
  tests/alloc/reentry_test.cc
  tests/alloc/release_test.cc
  tests/alloc/run_test.cc
  tests/alloc/size_class_test.cc
  tests/alloc/stats_test.cc
  tests/alloc/strata_test.cc
  tests/profile/cancel_test.cc
  tests/alloc/thread_exit_recovery_test.cc
  tests/profile/profile_test.cc
  tests/threading/backoff_test.cc
  tests/threading/intrusive_list_test.cc
  tests/threading/mpsc_queue_test.cc
  tests/threading/spin_lock_test.cc
  tests/threading/tagged_stack_test.cc
  tests/threading/thread_exit_test.cc
  tests/threading/thread_id_test.cc
)
set(STRATA_FLAGS_TESTS tests/alloc/flags_test.cc)
# The checked build's (strata_cc_test's NAME_checked): misuse_test and
# concurrent_free_test only here (they assert kCheckedBuild), the others in
# both builds.
set(STRATA_CHECKED_TESTS
  tests/alloc/concurrent_free_test.cc
  tests/alloc/error_test.cc
  tests/alloc/guarded_fault_test.cc
  tests/alloc/guarded_test.cc
  tests/alloc/heap_parts_test.cc
  tests/alloc/heap_test.cc
  tests/alloc/misuse_test.cc
  tests/alloc/reentry_test.cc
  tests/alloc/run_test.cc
  tests/alloc/thread_exit_recovery_test.cc
)
