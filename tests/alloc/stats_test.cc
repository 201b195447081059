#include "alloc/stats.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "alloc/heap_counters.h"
#include "alloc/heap.h"
#include "alloc/options.h"
#include "alloc/release.h"
#include "alloc/size_class.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/util/capture_write.h"
#include "tests/util/sanitizer.h"

namespace strata {
namespace {

TEST(StatsTest, BlocksInUseFollowTheWorkload) {
  Stats before;
  GetStats(&before);
  const size_t cls = internal::SizeToClass(72);
  std::vector<void*> blocks;
  for (int i = 0; i < 5000; ++i) blocks.push_back(Allocate(72));
  Stats peak;
  GetStats(&peak);
  EXPECT_EQ(peak.classes[cls].blocks_in_use, before.classes[cls].blocks_in_use + 5000);
  const uint64_t runs = peak.classes[cls].runs_full + peak.classes[cls].runs_partial +
                        peak.classes[cls].runs_empty;
  EXPECT_GE(runs, 5000u / (4096 / 72));
  EXPECT_GE(peak.arenas_owned, 1u);
  for (void* p : blocks) Deallocate(p);
  Stats after;
  GetStats(&after);
  EXPECT_EQ(after.classes[cls].blocks_in_use, before.classes[cls].blocks_in_use);
  // Every run of the class is empty again (kept whole for reuse, or
  // released), but for those whose blocks wait in this thread's class cache
  // (free for the program, counted by their runs until they go back).
  const uint32_t cached = internal::tls_heap->cache().Length(cls);
  EXPECT_LE(after.classes[cls].runs_full + after.classes[cls].runs_partial,
            before.classes[cls].runs_full + before.classes[cls].runs_partial + cached);
  EXPECT_GE(after.classes[cls].blocks_free, cached);

  void* big = Allocate(1 << 20);
  Stats large;
  GetStats(&large);
  EXPECT_EQ(large.large_blocks, after.large_blocks + 1);
  Deallocate(big);
}

using testing::CaptureWrite;

TEST(StatsTest, TableIsWrittenWithoutAllocating) {
  void* p = Allocate(24);
  std::string text;
  ASSERT_EQ(CaptureWrite([](int fd) { WriteStatsTable(fd); return 0; }, &text), 0);
  ASSERT_FALSE(text.empty());
  EXPECT_NE(text.find("class  size"), std::string::npos);
  EXPECT_NE(text.find("# arenas:"), std::string::npos);
  EXPECT_NE(text.find("# OS:"), std::string::npos);
  Deallocate(p);
}

// strata_stats_write(fd, name): its return value and what it wrote.
int WriteByName(const char* format, std::string* text) {
  return CaptureWrite([format](int fd) { return strata_stats_write(fd, format); }, text);
}

// The formats have one name each, the stats_format option's: the C entry
// point takes exactly those, and each writes its own format.
TEST(StatsTest, StatsWriteTakesTheOptionsFormatNames) {
  void* p = Allocate(24);
  std::string text;
  ASSERT_EQ(WriteByName("table", &text), 0);
  EXPECT_NE(text.find("class  size"), std::string::npos);
  ASSERT_EQ(WriteByName("json", &text), 0);
  EXPECT_EQ(text.front(), '{');
  EXPECT_EQ(text.find("\"arenas\""), std::string::npos) << "plain json has no arena map";
  ASSERT_EQ(WriteByName("json-arenas", &text), 0);
  EXPECT_EQ(text.front(), '{');
  EXPECT_NE(text.find("\"arenas\""), std::string::npos);
  ASSERT_EQ(WriteByName("prometheus", &text), 0);
  EXPECT_NE(text.find("# TYPE"), std::string::npos);
  for (const char* bad : {"json+arenas", "xml", "", "tablex"}) {
    EXPECT_EQ(WriteByName(bad, &text), -1) << bad;
    EXPECT_TRUE(text.empty()) << bad;
  }
  EXPECT_EQ(strata_stats_write(2, nullptr), -1);
  // The option's values are the same names, in the same order.
  for (const char* name : {"table", "json", "json-arenas", "prometheus"}) {
    ASSERT_TRUE(SetOptionByName("stats_format", name, OptionSource::kApi)) << name;
  }
  EXPECT_EQ(GetOption(Option::kStatsFormat), static_cast<int64_t>(StatsFormat::kPrometheus));
  ASSERT_TRUE(SetOptionByName("stats_format", "json-arenas", OptionSource::kApi));
  EXPECT_EQ(GetOption(Option::kStatsFormat), static_cast<int64_t>(StatsFormat::kJsonArenas));
  ASSERT_TRUE(SetOptionByName("stats_format", "table", OptionSource::kApi));
  Deallocate(p);
}

using internal::kCounterSectionKeys;
using internal::kHeapCounterRows;
using internal::kNumHeapCounters;
using internal::kStatsCounterFields;

// The JSON object under `key` (braces matched), or "" when there is none.
std::string JsonObject(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\":{");
  if (at == std::string::npos) return "";
  const size_t open = json.find('{', at);
  int depth = 0;
  for (size_t i = open; i < json.size(); ++i) {
    if (json[i] == '{') ++depth;
    if (json[i] == '}' && --depth == 0) return json.substr(open, i - open + 1);
  }
  return "";
}

// True when object `obj` has "key":value as one of its own fields.
bool HasField(const std::string& obj, const char* key, uint64_t value) {
  const std::string field = std::string("\"") + key + "\":" + std::to_string(value);
  for (size_t at = obj.find(field); at != std::string::npos; at = obj.find(field, at + 1)) {
    const char before = obj[at - 1];
    const char after = obj[at + field.size()];
    if ((before == '{' || before == ',') && (after == ',' || after == '}')) return true;
  }
  return false;
}

// Every row of heap_counters.h is named once and reaches every output with
// the value of its Stats field, without an edit outside the table.
TEST(StatsCountersTest, EveryCounterRowIsInEveryFormat) {
  std::set<std::string> names, metrics, keys, labels;
  for (const auto& row : kHeapCounterRows) {
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_TRUE(metrics.insert(row.metric).second) << row.metric;
    EXPECT_TRUE(labels.insert(row.label).second) << row.label;
    const std::string key = std::string(kCounterSectionKeys[static_cast<size_t>(row.section)]) +
                            "." + row.json_key;
    EXPECT_TRUE(keys.insert(key).second) << key;
    const std::string metric = row.metric;
    EXPECT_EQ(metric.substr(metric.size() - 6), "_total") << metric << ": a counter";
    const std::string help = row.help;
    EXPECT_EQ(help.back(), '.') << row.name << ": help is one sentence";
    EXPECT_EQ(help.find('\n'), std::string::npos) << row.name;
  }

  // Known activity: allocations enough to refill (new runs, an arena), and
  // blocks freed by another thread, which then exits (flushing its batches).
  std::vector<void*> blocks;
  for (int i = 0; i < 5000; ++i) blocks.push_back(Allocate(72));
  std::thread([&] {
    for (size_t i = 0; i < blocks.size(); i += 2) Deallocate(blocks[i]);
  }).join();
  for (size_t i = 1; i < blocks.size(); i += 2) Deallocate(blocks[i]);

  Stats s;
  GetStats(&s);
  EXPECT_GT(s.refills, 0u);
  EXPECT_GT(s.runs_created, 0u);
  EXPECT_GT(s.arenas_acquired, 0u);
  EXPECT_GE(s.remote_frees, 2500u);
  EXPECT_GE(s.remote_bytes, 2500u * 72);

  // Every format prints this one snapshot, so each value is exactly s's.
  auto write = [&s](StatsFormat format) {
    std::string text;
    CaptureWrite([&](int fd) { WriteStats(fd, format, &s); return 0; }, &text);
    return text;
  };
  const std::string json = write(StatsFormat::kJson);
  const std::string prometheus = write(StatsFormat::kPrometheus);
  const std::string table = write(StatsFormat::kTable);
  ASSERT_NE(table.find("# thread caches"), std::string::npos);
  for (size_t i = 0; i < kNumHeapCounters; ++i) {
    const auto& row = kHeapCounterRows[i];
    const uint64_t value = s.*kStatsCounterFields[i];
    const char* section_key = kCounterSectionKeys[static_cast<size_t>(row.section)];
    const std::string section = JsonObject(json, section_key);
    ASSERT_FALSE(section.empty()) << row.name;
    EXPECT_TRUE(HasField(section, row.json_key, value))
        << row.name << " = " << value << " not in " << section;
    const std::string m = std::string("strata_") + row.metric;
    EXPECT_NE(prometheus.find("# HELP " + m + " " + row.help + "\n# TYPE " + m + " counter\n" + m +
                              " " + std::to_string(value) + "\n"),
              std::string::npos)
        << m;
    // The table's line: its label, then the value right-aligned.
    const size_t line = table.find(std::string("#   ") + row.label + " ");
    ASSERT_NE(line, std::string::npos) << row.label;
    const std::string text = table.substr(line, table.find('\n', line) - line);
    EXPECT_EQ(text.substr(text.find_last_of(' ') + 1), std::to_string(value)) << text;
  }

  // The names the counters have always had stay put (dashboards, tools).
  EXPECT_TRUE(HasField(JsonObject(json, "heaps"), "refills", s.refills));
  EXPECT_TRUE(HasField(JsonObject(json, "heaps"), "runs_woken", s.runs_woken));
  EXPECT_TRUE(HasField(JsonObject(json, "heaps"), "orphans_absorbed", s.orphans_absorbed));
  EXPECT_TRUE(HasField(JsonObject(json, "cross_thread"), "frees", s.remote_frees));
  EXPECT_TRUE(HasField(JsonObject(json, "cross_thread"), "bytes", s.remote_bytes));
  EXPECT_TRUE(HasField(JsonObject(json, "cross_thread"), "received", s.remote_received));
  EXPECT_TRUE(HasField(JsonObject(json, "cross_thread"), "forwarded", s.remote_forwarded));
  EXPECT_TRUE(HasField(JsonObject(json, "cross_thread"), "batches", s.remote_batches));
  EXPECT_TRUE(HasField(JsonObject(json, "release"), "pools_purged", s.pools_purged));
  for (const char* help :
       {"# HELP strata_refills_total Refills of an empty class list in a thread cache from its runs.\n",
        "# HELP strata_runs_woken_total Sleeping full runs woken by frees.\n",
        "# HELP strata_remote_frees_total Blocks freed by a thread that did not own them.\n"}) {
    EXPECT_NE(prometheus.find(help), std::string::npos) << help;
  }
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

uint64_t ClassBytes(const Stats& s) {
  uint64_t bytes = 0;
  for (size_t c = 1; c < kNumSizeClasses; ++c) {
    bytes += s.classes[c].blocks_in_use * s.classes[c].block_size;
  }
  return bytes;
}

// Under concurrent load (threads allocating, freeing their own and each
// other's blocks, small, medium and large) every snapshot is internally
// consistent, and at each pause live bytes equal the test's own count.
TEST(StatsConcurrencyTest, SnapshotsAreConsistentAndLiveBytesMatchAShadowCount) {
  constexpr int kThreads = 4;
  const int kRounds = testing::Scaled(6, 3);
  const int kOpsPerRound = testing::Scaled(20000, 3000);
  std::atomic<int64_t> shadow{0};  // usable bytes the test holds
  std::atomic<void*> exchange[64] = {};
  std::atomic<bool> stop_reader{false};
  std::barrier sync(kThreads + 1);

  std::thread reader([&] {
    static Stats s;  // only this thread uses it
    uint64_t snapshots = 0;
    uint64_t last_frees = 0, last_batches = 0;
    while (!stop_reader.load(std::memory_order_acquire)) {
      GetStats(&s);
      ++snapshots;
      ASSERT_EQ(ClassBytes(s), s.small_bytes_in_use);
      ASSERT_EQ(s.live_bytes, s.retention.in_use + s.retention.in_use_large);
      ASSERT_EQ(s.retention.in_use + s.retention.in_remote_transit, s.small_bytes_in_use);
      // The retention rows sum to the bytes mapped at every snapshot, not
      // only at rest: arenas changing hands, mappings made and unmapped
      // meanwhile are never seen half done (stats.h, "Consistency").
      ASSERT_EQ(s.retention.Total(), s.os_mapped_bytes) << "snapshot " << snapshots;
      // Counters summed over heaps without a lock never go backwards.
      ASSERT_GE(s.remote_frees, last_frees);
      ASSERT_GE(s.remote_batches, last_batches);
      last_frees = s.remote_frees;
      last_batches = s.remote_batches;
    }
    EXPECT_GT(snapshots, 0u);
  });

  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      uint64_t x = 0x9E3779B97F4A7C15ull * (t + 1);
      auto next = [&x] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
      };
      std::vector<void*> mine;
      for (int round = 0; round < kRounds; ++round) {
        for (int i = 0; i < kOpsPerRound; ++i) {
          const uint64_t r = next();
          if (mine.empty() || r % 3 != 0) {
            const size_t size = r % 97 == 0 ? 100000 + r % 200000 : 8 + r % 3000;
            void* p = Allocate(size);
            memset(p, 1, 16);
            shadow.fetch_add(static_cast<int64_t>(UsableSize(p)), std::memory_order_relaxed);
            mine.push_back(p);
          } else {
            const size_t k = r % mine.size();
            void* p = mine[k];
            mine[k] = mine.back();
            mine.pop_back();
            // Half the frees go through another thread's hands.
            if (r & 8) p = exchange[r % 64].exchange(p, std::memory_order_acq_rel);
            if (p != nullptr) {
              shadow.fetch_sub(static_cast<int64_t>(UsableSize(p)), std::memory_order_relaxed);
              Deallocate(p);
            }
          }
        }
        sync.arrive_and_wait();  // pause: the main thread checks
        sync.arrive_and_wait();  // resume
      }
      for (void* p : mine) {
        shadow.fetch_sub(static_cast<int64_t>(UsableSize(p)), std::memory_order_relaxed);
        Deallocate(p);
      }
    });
  }
  for (int round = 0; round < kRounds; ++round) {
    sync.arrive_and_wait();
    internal::PauseRelease();
    Stats s;
    GetStats(&s);
    // (Blocks parked in the exchange slots are still counted in the shadow.)
    EXPECT_EQ(static_cast<int64_t>(s.live_bytes), shadow.load()) << "round " << round;
    EXPECT_EQ(s.retention.Total(), s.os_mapped_bytes) << "round " << round;
    // Workers are paused: every batch in bucket b carried at least 2^b blocks,
    // each counted as a remote free before its batch was sent.
    uint64_t min_blocks = 0;
    for (size_t b = 0; b < kBatchHistogramBuckets; ++b) min_blocks += s.batch_histogram[b] << b;
    EXPECT_LE(min_blocks, s.remote_frees) << "round " << round;
    EXPECT_GT(s.remote_batches, 0u) << "round " << round;
    internal::ResumeRelease();
    sync.arrive_and_wait();
  }
  for (auto& t : workers) t.join();
  stop_reader.store(true, std::memory_order_release);
  reader.join();
  for (auto& slot : exchange) {
    if (void* p = slot.exchange(nullptr)) Deallocate(p);
  }
}

// At rest, the retention report accounts for every byte strata has mapped,
// through every kind of memory: live and freed blocks, cross-thread frees
// still travelling, dead threads' heaps, empty and purged arenas, large
// blocks live and cached.
TEST(RetentionTest, AccountsForEveryMappedByte) {
  auto check = [](const char* when) {
    internal::PauseRelease();
    Stats s;
    GetStats(&s);
    EXPECT_EQ(s.retention.Total(), s.os_mapped_bytes) << when;
    internal::ResumeRelease();
    return s;
  };
  check("start");
  std::vector<void*> blocks;
  for (int i = 0; i < 20000; ++i) blocks.push_back(Allocate(16 + (i * 37) % 4000));
  void* big = Allocate(3 << 20);
  void* cached = Allocate(1 << 20);
  Deallocate(cached);
  Stats s = check("live blocks, a cached large mapping");
  EXPECT_GE(s.retention.in_use, 20000u * 16);
  EXPECT_GE(s.retention.in_use_large, 3u << 20);
  EXPECT_GT(s.retention.large_cached, 0u);
  EXPECT_GT(s.retention.arena_headers, 0u);
  EXPECT_GT(s.retention.metadata, 0u);

  // Freed by another thread that then exits: blocks in transit to us, and a
  // dead thread's heap. (Release paused: a pass would free what waits in
  // our queue while we sleep in join, heap.h's collection.)
  internal::PauseRelease();
  std::thread([&] {
    std::vector<void*> own;
    for (int i = 0; i < 5000; ++i) own.push_back(Allocate(48));
    for (size_t i = 0; i < blocks.size(); i += 2) Deallocate(blocks[i]);
    for (size_t i = 0; i < own.size(); i += 3) blocks.push_back(own[i]);  // outlive the thread
    for (size_t i = 0; i < own.size(); ++i) {
      if (i % 3 != 0) Deallocate(own[i]);
    }
  }).join();
  internal::ResumeRelease();
  s = check("after a thread freed our blocks and exited");
  EXPECT_GT(s.retention.in_remote_transit, 0u);
  for (size_t i = 1; i < blocks.size(); i += 2) Deallocate(blocks[i]);
  Deallocate(big);
  ReleaseMemory();
  s = check("after ReleaseMemory");
  EXPECT_GT(s.retention.free_pools_purged + s.retention.empty_arenas_purged, 0u);
}

}  // namespace
}  // namespace strata
