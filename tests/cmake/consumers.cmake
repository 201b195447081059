# The consumer programs both consumer projects build, one per strata target
# given, each run as a test with what it must find (tests/cmake/consumer.cc).
# Usage: strata_consumer(NAME TARGET EXPECTED), EXPECTED "strata" or "libc".
enable_testing()
function(strata_consumer name target expected)
  add_executable(${name} "${CMAKE_CURRENT_LIST_DIR}/../consumer.cc")
  target_link_libraries(${name} PRIVATE ${target})
  add_test(NAME ${name} COMMAND ${name} ${expected})
endfunction()
