// The options registry (see options.h). Parsing, range checks and messages
// are written by hand so that nothing here allocates: the environment is
// read before the first allocation is served.
#include "alloc/options.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstring>

#include "absl/base/thread_annotations.h"
#include "alloc/fd_writer.h"
#include "threading/spin_lock.h"

namespace strata {
namespace {

constexpr OptionInfo kInfo[kNumOptions] = {
#define STRATA_OPTION_INFO(id, name, type, def, lo, hi, runtime, choices, doc) \
  {#name, OptionType::type, def, lo, hi, runtime, choices, doc},
    STRATA_OPTION_LIST(STRATA_OPTION_INFO)
#undef STRATA_OPTION_INFO
};

constexpr bool DefaultsAreInRange() {
  for (const OptionInfo& i : kInfo) {
    if (i.type == OptionType::kString) continue;
    if (i.default_value < i.min || i.default_value > i.max) return false;
  }
  return true;
}
static_assert(DefaultsAreInRange(), "every default lies in its accepted range");

// SYNCHRONIZATION
//  - g_values: relaxed atomics (each knob stands alone).
//  - g_sources: relaxed atomics, written after the value they describe.
//  - g_strings: guarded by g_string_lock (read rarely: at exit, when
//    sampling starts).
//  - g_init_state: 0 = not read, 1 = being read, 2 = read. The reader's
//    release store pairs with the acquire load of waiting threads.
std::atomic<uint8_t> g_sources[kNumOptions] = {};
constinit threading::SpinLock g_string_lock;
char g_strings[kNumOptions][kMaxOptionString] ABSL_GUARDED_BY(g_string_lock) = {};
std::atomic<int> g_init_state{0};
std::atomic<options_internal::ChangeHook> g_change_hook{nullptr};

constexpr const char* kSourceNames[] = {"default", "env", "flag", "api"};

// ---- Parsing ------------------------------------------------------------

bool EqualsIgnoreCase(const char* a, size_t n, const char* b) {
  if (strlen(b) != n) return false;
  for (size_t i = 0; i < n; ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != b[i]) return false;
  }
  return true;
}

// Parses an optionally negative decimal integer followed by a suffix that
// the caller interprets. Returns false on overflow or no digits.
bool ParseInteger(const char* s, int64_t* value, const char** suffix) {
  while (*s == ' ') ++s;
  const bool negative = *s == '-';
  if (negative || *s == '+') ++s;
  if (*s < '0' || *s > '9') return false;
  uint64_t v = 0;
  while (*s >= '0' && *s <= '9') {
    if (v > (uint64_t{1} << 62) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(*s - '0');
    ++s;
  }
  *value = negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
  *suffix = s;
  return true;
}

// Length of s without trailing spaces.
size_t TrimmedLength(const char* s) {
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == ' ') --n;
  return n;
}

bool ScaleBy(int64_t* v, int64_t factor) {
  return !__builtin_mul_overflow(*v, factor, v);
}

// One name of a "|"-separated list (an enum's choices, a string option's
// forms): [s, s + n), the index-th of the list.
struct Choice {
  const char* s;
  size_t n;
  int64_t index;
  bool last;
};

// Calls fn(choice) for each name of list in order until fn returns true;
// returns whether one did. The one place lists are split.
template <typename Fn>
bool ForEachChoice(const char* list, Fn fn) {
  for (int64_t index = 0;; ++index) {
    const char* bar = strchr(list, '|');
    const size_t n = bar != nullptr ? static_cast<size_t>(bar - list) : strlen(list);
    if (fn(Choice{list, n, index, bar == nullptr})) return true;
    if (bar == nullptr) return false;
    list = bar + 1;
  }
}

bool ParseValue(const OptionInfo& info, const char* text, int64_t* out) {
  switch (info.type) {
    case OptionType::kBool: {
      const size_t n = TrimmedLength(text);
      for (const char* t : {"1", "true", "on", "yes"}) {
        if (EqualsIgnoreCase(text, n, t)) return *out = 1, true;
      }
      for (const char* f : {"0", "false", "off", "no"}) {
        if (EqualsIgnoreCase(text, n, f)) return *out = 0, true;
      }
      return false;
    }
    case OptionType::kEnum: {
      const size_t n = TrimmedLength(text);
      return ForEachChoice(info.choices, [&](const Choice& c) {
        char name[32];
        if (c.n >= sizeof(name)) return false;
        memcpy(name, c.s, c.n);
        name[c.n] = '\0';
        if (!EqualsIgnoreCase(text, n, name)) return false;
        *out = c.index;
        return true;
      });
    }
    case OptionType::kInt:
    case OptionType::kBytes:
    case OptionType::kMillis: {
      int64_t v;
      const char* suffix;
      if (!ParseInteger(text, &v, &suffix)) return false;
      const size_t n = TrimmedLength(suffix);
      if (n == 0) return *out = v, true;
      if (info.type == OptionType::kBytes) {
        static constexpr struct {
          const char* names[4];
          int64_t factor;
        } kUnits[] = {{{"b", nullptr, nullptr, nullptr}, 1},
                      {{"k", "kb", "kib", nullptr}, int64_t{1} << 10},
                      {{"m", "mb", "mib", nullptr}, int64_t{1} << 20},
                      {{"g", "gb", "gib", nullptr}, int64_t{1} << 30}};
        for (const auto& unit : kUnits) {
          for (const char* name : unit.names) {
            if (name != nullptr && EqualsIgnoreCase(suffix, n, name)) {
              return ScaleBy(&v, unit.factor) && (*out = v, true);
            }
          }
        }
      } else if (info.type == OptionType::kMillis) {
        if (EqualsIgnoreCase(suffix, n, "ms")) return *out = v, true;
        if (EqualsIgnoreCase(suffix, n, "s")) return ScaleBy(&v, 1000) && (*out = v, true);
      }
      return false;
    }
    case OptionType::kString:
      return false;  // handled separately
  }
  return false;
}

// Writes v in decimal to out (no NUL); returns the length (at most 20).
size_t FormatSigned(int64_t v, char* out) {
  if (v >= 0) return internal::FormatDecimal(static_cast<uint64_t>(v), out);
  out[0] = '-';
  return 1 + internal::FormatDecimal(static_cast<uint64_t>(-(v + 1)) + 1, out + 1);
}

// A string option's value is one of the forms its declaration accepts
// (OptionInfo::choices: words, "/" for an absolute path, "" for empty).
bool ValidString(Option o, const char* text) {
  const size_t len = strlen(text);
  if (len >= kMaxOptionString) return false;
  const char* forms = kInfo[static_cast<size_t>(o)].choices;
  if (forms == nullptr) return true;
  return ForEachChoice(forms, [&](const Choice& c) {
    if (c.n == 1 && c.s[0] == '/') return text[0] == '/';
    return c.n == len && strncmp(c.s, text, len) == 0;
  });
}

// "empty, 0, 1, stderr or an absolute path": a string option's forms.
void WriteStringForms(internal::FdWriter& w, const char* forms) {
  ForEachChoice(forms, [&](const Choice& c) {
    if (c.index > 0) w.Str(c.last ? " or " : ", ");
    if (c.n == 0) {
      w.Str("empty");
    } else if (c.n == 1 && c.s[0] == '/') {
      w.Str("an absolute path");
    } else {
      w.Bytes(c.s, c.n);
    }
    return false;
  });
}

// ---- Messages -----------------------------------------------------------

// "expected ... in [min, max]" for option o.
void WriteExpected(internal::FdWriter& w, Option o) {
  const OptionInfo& info = kInfo[static_cast<size_t>(o)];
  switch (info.type) {
    case OptionType::kBool:
      w.Str("expected one of 0, 1, true, false, on, off, yes, no");
      break;
    case OptionType::kEnum:
      w.Str("expected one of: ");
      for (const char* c = info.choices; *c != '\0'; ++c) {
        if (*c == '|') {
          w.Str(", ");
        } else {
          w.Char(*c);
        }
      }
      break;
    case OptionType::kInt:
      w.Str("expected an integer in [");
      w.Int(info.min).Str(", ");
      w.Int(info.max).Char(']');
      break;
    case OptionType::kBytes:
      w.Str("expected a byte count in [");
      w.Int(info.min).Str(", ");
      w.Int(info.max).Str("] (suffixes k, m, g)");
      break;
    case OptionType::kMillis:
      w.Str("expected milliseconds in [");
      w.Int(info.min).Str(", ");
      w.Int(info.max).Str("] (suffixes ms, s)");
      break;
    case OptionType::kString:
      if (info.choices != nullptr) {
        w.Str("expected ");
        WriteStringForms(w, info.choices);
      } else {
        w.Str("expected text shorter than 256 bytes");
      }
      break;
  }
}

void WriteOrigin(internal::FdWriter& w, Option o, OptionSource source) {
  const char* name = kInfo[static_cast<size_t>(o)].name;
  switch (source) {
    case OptionSource::kEnv:
      w.Str("STRATA_");
      for (const char* c = name; *c != '\0'; ++c) {
        w.Char(*c >= 'a' && *c <= 'z' ? static_cast<char>(*c - 'a' + 'A') : *c);
      }
      break;
    case OptionSource::kFlag:
      w.Str("--strata_").Str(name);
      break;
    default:
      w.Str("the API");
      break;
  }
}

void ReportRejected(Option o, const char* text, OptionSource source, const char* why) {
  internal::FdWriter w(2);
  char current[kMaxOptionString];
  FormatOptionValue(o, current, sizeof(current));
  w.Str("strata: option ").Str(kInfo[static_cast<size_t>(o)].name).Str(": value '").Str(text);
  w.Str("' from ");
  WriteOrigin(w, o, source);
  w.Str(" refused: ");
  if (why != nullptr) {
    w.Str(why);
  } else {
    WriteExpected(w, o);
  }
  w.Str("; keeping '").Str(current).Str("'\n");
}

void NotifyChange(Option o) {
  // Acquire pairs with the release store in SetChangeHook().
  if (options_internal::ChangeHook hook = g_change_hook.load(std::memory_order_acquire)) hook(o);
}

void Store(Option o, int64_t value, OptionSource source) {
  const size_t i = static_cast<size_t>(o);
  // Relaxed: see g_values / g_sources.
  options_internal::g_values[i].store(value, std::memory_order_relaxed);
  g_sources[i].store(static_cast<uint8_t>(source), std::memory_order_relaxed);
  // Release pairs with the acquire load in OptionChanges(): the value is
  // stored before the count that announces it.
  options_internal::g_changes.fetch_add(1, std::memory_order_release);
  NotifyChange(o);
}

bool InitDone() {
  // Acquire pairs with the release store at the end of EnsureInitialized().
  return g_init_state.load(std::memory_order_acquire) == 2;
}

// Applies text to option o from `source`. Returns false when refused,
// after reporting it unless `quiet`.
bool Apply(Option o, const char* text, OptionSource source, bool quiet = false) {
  const OptionInfo& info = kInfo[static_cast<size_t>(o)];
  if (!info.runtime && source != OptionSource::kEnv && InitDone()) {
    ReportRejected(o, text, source, "only the environment can set it (read at start-up)");
    return false;
  }
  if (info.type == OptionType::kString) {
    if (!ValidString(o, text)) {
      if (!quiet) ReportRejected(o, text, source, nullptr);
      return false;
    }
    {
      threading::SpinLockHolder hold(&g_string_lock);
      strcpy(g_strings[static_cast<size_t>(o)], text);
    }
    Store(o, 0, source);
    return true;
  }
  int64_t value;
  if (!ParseOptionValue(o, text, &value)) {
    if (!quiet) ReportRejected(o, text, source, nullptr);
    return false;
  }
  Store(o, value, source);
  return true;
}

}  // namespace

namespace options_internal {

constinit std::atomic<uint64_t> g_changes{0};

constinit std::atomic<int64_t> g_values[kNumOptions] = {
#define STRATA_OPTION_DEFAULT(id, name, type, def, lo, hi, runtime, choices, doc) \
  std::atomic<int64_t>(def),
    STRATA_OPTION_LIST(STRATA_OPTION_DEFAULT)
#undef STRATA_OPTION_DEFAULT
};

// Applies every STRATA_* variable. A refused value's text goes in
// refused[i] (its report is the caller's), others are set to nullptr.
void ReadEnvironment(const char* refused[kNumOptions]) {
  for (size_t i = 0; i < kNumOptions; ++i) {
    refused[i] = nullptr;
    char env_name[64] = "STRATA_";
    size_t n = 7;
    for (const char* c = kInfo[i].name; *c != '\0' && n + 1 < sizeof(env_name); ++c) {
      env_name[n++] = *c >= 'a' && *c <= 'z' ? static_cast<char>(*c - 'a' + 'A') : *c;
    }
    env_name[n] = '\0';
    // getenv reads environ and never allocates.
    const char* text = getenv(env_name);
    if (text != nullptr && !Apply(static_cast<Option>(i), text, OptionSource::kEnv, /*quiet=*/true)) {
      refused[i] = text;
    }
  }
}

// The reports of what ReadEnvironment refused.
void ReportRefused(const char* const refused[kNumOptions]) {
  for (size_t i = 0; i < kNumOptions; ++i) {
    if (refused[i] != nullptr) ReportRejected(static_cast<Option>(i), refused[i], OptionSource::kEnv, nullptr);
  }
}

void ReadEnvironmentForTesting() {
  const char* refused[kNumOptions];
  ReadEnvironment(refused);
  ReportRefused(refused);
}

void EnsureInitialized() {
  if (InitDone()) return;
  // Before libc has set environ up (a malloc from a program's
  // .preinit_array runs before libc's own initializer), getenv finds
  // nothing: marking the work done now would lose the environment for the
  // whole process. Serve with the defaults, and read it on a later call
  // (init.cc's constructor, step 1, at the latest).
  if (environ == nullptr) return;
  int expected = 0;
  // Acquire on failure pairs with the final release store: a thread that
  // finds the work done (state 2) sees its results.
  if (!g_init_state.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                            std::memory_order_acquire)) {
    // Another thread is reading the environment: it never allocates and
    // takes microseconds, so wait for it.
    while (!InitDone()) threading::CpuRelax();
    return;
  }
  // The refusals are reported once the others stop waiting: a report is
  // a write to stderr, which may block (a full pipe) for as long as nobody
  // reads it.
  const char* refused[kNumOptions];
  ReadEnvironment(refused);
  // Release pairs with the acquire loads in InitDone().
  g_init_state.store(2, std::memory_order_release);
  ReportRefused(refused);
}

void SetChangeHook(ChangeHook hook) {
  // Release pairs with the acquire load in NotifyChange().
  g_change_hook.store(hook, std::memory_order_release);
}

// Held from fork's prepare handler to the parent's or child's (fork.cc): a
// hand-over the analysis cannot follow across functions.
void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_string_lock.Lock(); }
void UnlockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_string_lock.Unlock(); }

void ResetForTesting() {
  for (size_t i = 0; i < kNumOptions; ++i) {
    {
      threading::SpinLockHolder hold(&g_string_lock);
      g_strings[i][0] = '\0';
    }
    Store(static_cast<Option>(i), kInfo[i].type == OptionType::kString ? 0 : kInfo[i].default_value,
          OptionSource::kDefault);
  }
}

}  // namespace options_internal

const OptionInfo& GetOptionInfo(Option o) { return kInfo[static_cast<size_t>(o)]; }

bool ParseOptionValue(Option o, const char* text, int64_t* value) {
  const OptionInfo& info = kInfo[static_cast<size_t>(o)];
  int64_t v;
  if (info.type == OptionType::kString || !ParseValue(info, text, &v)) return false;
  if (v < info.min || v > info.max) return false;
  *value = v;
  return true;
}

bool FindOption(const char* name, Option* out) {
  if (strncmp(name, "strata_", 7) == 0) name += 7;
  for (size_t i = 0; i < kNumOptions; ++i) {
    if (strcmp(kInfo[i].name, name) == 0) {
      *out = static_cast<Option>(i);
      return true;
    }
  }
  return false;
}

void GetStringOption(Option o, char* buf, size_t len) {
  if (len == 0) return;
  threading::SpinLockHolder hold(&g_string_lock);
  const char* s = g_strings[static_cast<size_t>(o)];
  const size_t n = strnlen(s, len - 1);
  memcpy(buf, s, n);
  buf[n] = '\0';
}

OptionSource GetOptionSource(Option o) {
  // Relaxed: see g_sources.
  return static_cast<OptionSource>(g_sources[static_cast<size_t>(o)].load(std::memory_order_relaxed));
}

const char* OptionSourceName(OptionSource s) { return kSourceNames[static_cast<size_t>(s)]; }

bool SetOption(Option o, int64_t value) {
  char text[24];
  text[FormatSigned(value, text)] = '\0';  // for a possible message
  const OptionInfo& info = kInfo[static_cast<size_t>(o)];
  if (info.type == OptionType::kString) {
    ReportRejected(o, text, OptionSource::kApi, "a text option: use SetOptionByName");
    return false;
  }
  if (!info.runtime && InitDone()) {
    ReportRejected(o, text, OptionSource::kApi, "only the environment can set it (read at start-up)");
    return false;
  }
  if (value < info.min || value > info.max) {
    ReportRejected(o, text, OptionSource::kApi, nullptr);
    return false;
  }
  Store(o, value, OptionSource::kApi);
  return true;
}

bool SetOptionByName(const char* name, const char* value, OptionSource source) {
  Option o;
  if (!FindOption(name, &o)) {
    internal::FdWriter w(2);
    w.Str("strata: unknown option '").Str(name).Str("' (value '").Str(value).Str("' ignored)\n");
    return false;
  }
  return Apply(o, value, source);
}

size_t FormatOptionValue(Option o, char* buf, size_t len) {
  if (len == 0) return 0;
  const OptionInfo& info = kInfo[static_cast<size_t>(o)];
  if (info.type == OptionType::kString) {
    GetStringOption(o, buf, len);
    return strlen(buf);
  }
  const int64_t v = GetOption(o);
  char tmp[32];
  size_t n = 0;
  if (info.type == OptionType::kBool) {
    const char* s = v ? "1" : "0";
    n = strlen(s);
    memcpy(tmp, s, n);
  } else if (info.type == OptionType::kEnum) {
    Choice name{"?", 1, v, true};
    ForEachChoice(info.choices, [&](const Choice& c) {
      if (c.index == v) name = c;
      return c.index == v;
    });
    n = name.n < sizeof(tmp) ? name.n : sizeof(tmp);
    memcpy(tmp, name.s, n);
  } else {
    n = FormatSigned(v, tmp);
  }
  if (n >= len) n = len - 1;
  memcpy(buf, tmp, n);
  buf[n] = '\0';
  return n;
}

}  // namespace strata

extern "C" {

int strata_option_set(const char* name, const char* value) {
  return strata::SetOptionByName(name, value, strata::OptionSource::kApi) ? 0 : -1;
}

int strata_option_set_int(const char* name, long long value) {
  strata::Option o;
  if (!strata::FindOption(name, &o)) {
    strata::internal::FdWriter w(2);
    w.Str("strata: unknown option '").Str(name).Str("'\n");
    return -1;
  }
  return strata::SetOption(o, value) ? 0 : -1;
}

int strata_option_get(const char* name, char* buf, size_t len) {
  strata::Option o;
  if (!strata::FindOption(name, &o)) return -1;
  strata::FormatOptionValue(o, buf, len);
  return 0;
}

}  // extern "C"
