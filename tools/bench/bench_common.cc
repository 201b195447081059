#include "tools/bench/bench_common.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace strata::bench {
namespace {

// Set once by Flags before any thread starts; read-only afterwards.
const char* g_workload = "bench";

uint64_t TailWord(uint64_t tag, size_t size) { return Mix(tag ^ (size * 0x9E3779B97F4A7C15ull)); }

}  // namespace

Flags::Flags(const char* workload, const char* summary, int argc, char** argv)
    : workload_(workload), summary_(summary), argc_(argc), argv_(argv) {
  g_workload = workload;
  if (argc_ > 64) {
    std::fprintf(stderr, "%s: too many arguments\n", workload_);
    std::exit(2);
  }
}

void Flags::AddHelp(const char* name, const char* default_text, const char* help) {
  const int n = std::snprintf(help_ + help_len_, sizeof(help_) - help_len_, "  --%s=%s\n      %s\n",
                              name, default_text, help);
  if (n > 0) help_len_ += static_cast<size_t>(n);
  if (help_len_ >= sizeof(help_)) help_len_ = sizeof(help_) - 1;
}

const char* Flags::FindValue(const char* name) {
  const size_t n = std::strlen(name);
  for (int i = 1; i < argc_; ++i) {
    const char* a = argv_[i];
    if (std::strncmp(a, "--", 2) == 0 && std::strncmp(a + 2, name, n) == 0 && a[2 + n] == '=') {
      used_[i] = true;
      return a + 3 + n;
    }
  }
  return nullptr;
}

long Flags::Get(const char* name, long default_value, const char* help) {
  char text[32];
  std::snprintf(text, sizeof(text), "%ld", default_value);
  AddHelp(name, text, help);
  const char* value = FindValue(name);
  if (value == nullptr) return default_value;
  char* end = nullptr;
  const long v = std::strtol(value, &end, 10);
  if (*value == 0 || *end != 0 || v < 0) {
    std::fprintf(stderr, "%s: bad value for --%s: '%s' (a non-negative integer)\n", workload_,
                 name, value);
    std::exit(2);
  }
  return v;
}

const char* Flags::GetChoice(const char* name, const char* choices, const char* help) {
  AddHelp(name, choices, help);
  const char* value = FindValue(name);
  const size_t first_len = std::strcspn(choices, "|");
  if (value == nullptr) {
    // The default is the first choice; return it from a static copy.
    static char first[32];
    std::snprintf(first, sizeof(first), "%.*s", static_cast<int>(first_len), choices);
    return first;
  }
  const size_t n = std::strlen(value);
  for (const char* c = choices; *c != 0;) {
    const size_t len = std::strcspn(c, "|");
    if (len == n && std::strncmp(c, value, n) == 0) return value;
    c += len;
    if (*c == '|') ++c;
  }
  std::fprintf(stderr, "%s: bad value for --%s: '%s' (one of %s)\n", workload_, name, value,
               choices);
  std::exit(2);
}

void Flags::Done() {
  for (int i = 1; i < argc_; ++i) {
    if (std::strcmp(argv_[i], "--help") == 0 || std::strcmp(argv_[i], "-h") == 0) {
      std::printf("%s: %s\n\nflags (default after '='):\n%s", workload_, summary_, help_);
      std::exit(0);
    }
  }
  for (int i = 1; i < argc_; ++i) {
    if (used_[i]) continue;
    std::fprintf(stderr, "%s: unknown flag '%s' (--help lists them)\n", workload_, argv_[i]);
    std::exit(2);
  }
}

uint64_t Rng::LogRange(uint64_t lo, uint64_t hi) {
  const double l = std::log(static_cast<double>(lo));
  const double h = std::log(static_cast<double>(hi) + 1.0);
  const auto v = static_cast<uint64_t>(std::exp(l + (h - l) * Unit()));
  return v < lo ? lo : (v > hi ? hi : v);
}

uint64_t Rng::Pareto(uint64_t lo, uint64_t hi, double alpha) {
  // Inverse CDF: lo / (1-u)^(1/alpha); 1-u is in (0, 1].
  const double v = static_cast<double>(lo) / std::pow(1.0 - Unit(), 1.0 / alpha);
  return v >= static_cast<double>(hi) ? hi : static_cast<uint64_t>(v);
}

void Stamp(void* p, size_t size, uint64_t tag) {
  auto* b = static_cast<unsigned char*>(p);
  if (size < 16) {
    for (size_t i = 0; i < size; ++i) b[i] = static_cast<unsigned char>(tag >> (8 * (i & 7)));
    return;
  }
  const uint64_t tail = TailWord(tag, size);
  std::memcpy(b, &tag, 8);
  std::memcpy(b + size - 8, &tail, 8);
}

void Verify(const void* p, size_t size, uint64_t tag) {
  const auto* b = static_cast<const unsigned char*>(p);
  if (size < 16) {
    for (size_t i = 0; i < size; ++i) {
      if (b[i] != static_cast<unsigned char>(tag >> (8 * (i & 7)))) {
        Fail("block %p (size %zu, tag %016llx) corrupt at byte %zu", p, size,
             static_cast<unsigned long long>(tag), i);
      }
    }
    return;
  }
  uint64_t head, tail;
  std::memcpy(&head, b, 8);
  std::memcpy(&tail, b + size - 8, 8);
  if (head != tag) {
    Fail("block %p (size %zu, tag %016llx) corrupt at its head: %016llx", p, size,
         static_cast<unsigned long long>(tag), static_cast<unsigned long long>(head));
  }
  if (tail != TailWord(tag, size)) {
    Fail("block %p (size %zu, tag %016llx) corrupt at its tail: %016llx", p, size,
         static_cast<unsigned long long>(tag), static_cast<unsigned long long>(tail));
  }
}

void Fail(const char* format, ...) {
  char message[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  std::fprintf(stderr, "%s: FAILED: %s\n", g_workload, message);
  std::fflush(stderr);
  std::abort();
}

void PrintResult(int threads, uint64_t ops, uint64_t checksum, double seconds) {
  std::printf("bench=%s threads=%d ops=%llu checksum=%016llx time_s=%.4f\n", g_workload, threads,
              static_cast<unsigned long long>(ops), static_cast<unsigned long long>(checksum),
              seconds);
  std::fflush(stdout);
}

void PrintResult(int threads, const std::vector<ThreadResult>& results, double seconds) {
  uint64_t ops = 0, checksum = 0;
  for (const ThreadResult& r : results) {
    ops += r.ops;
    checksum += r.checksum;
  }
  PrintResult(threads, ops, checksum, seconds);
}

}  // namespace strata::bench
