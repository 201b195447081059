// records: the seed's pattern (tools/demo.cc) as a benchmark. A round
// allocates --records small records — a header (new), a name (new[], 9-64
// bytes) and a payload (malloc, 8-384 bytes), each its own allocation — keeps
// them all alive, then checks and frees them in allocation order. Rounds
// repeat; with --threads=N each thread runs its share of the rounds on its
// own records (the runner measures it with one thread, like the seed).
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tools/bench/bench_common.h"

namespace {

using strata::bench::Mix;
using strata::bench::Rng;
using strata::bench::ThreadResult;

// In the spirit of a small Python object: a header pointing at a name and a
// variable payload.
struct Record {
  char* name;
  uint64_t* payload;
  uint32_t payload_len;  // in 8-byte words, 1..48
  uint32_t id;
};

}  // namespace

int main(int argc, char** argv) {
  strata::bench::Flags flags("records",
                             "the seed's pattern: small records (header, name, payload) "
                             "allocated, then all freed, round after round",
                             argc, argv);
  const long threads = flags.Get("threads", 1, "threads sharing the rounds");
  const long iterations = flags.Get("iterations", 20, "rounds in total");
  const long records = flags.Get("records", 100000, "records per round");
  const long seed = flags.Get("seed", 1, "random seed");
  flags.Done();
  if (threads < 1 || records < 1) strata::bench::Fail("need threads and records >= 1");
  std::vector<ThreadResult> results(static_cast<size_t>(threads));
  strata::bench::Stopwatch watch;

  strata::bench::RunThreads(static_cast<int>(threads), [&](int index) {
    Rng rng(strata::bench::ThreadSeed(static_cast<uint64_t>(seed), static_cast<uint64_t>(index)));
    ThreadResult& out = results[static_cast<size_t>(index)];
    std::vector<Record*> table(static_cast<size_t>(records));
    const uint64_t rounds = strata::bench::Share(static_cast<uint64_t>(iterations),
                                                 static_cast<uint64_t>(threads),
                                                 static_cast<uint64_t>(index));
    for (uint64_t round = 0; round < rounds; ++round) {
      for (size_t i = 0; i < table.size(); ++i) {
        Record* r = new Record;
        const size_t name_len = 8 + rng.Next() % 56;  // 8..63 characters
        r->name = new char[name_len + 1];
        std::memset(r->name, 'a' + static_cast<int>(i % 26), name_len);
        r->name[name_len] = 0;
        r->payload_len = static_cast<uint32_t>(1 + rng.Next() % 48);  // 8..384 bytes
        const size_t bytes = r->payload_len * sizeof(uint64_t);
        r->payload = static_cast<uint64_t*>(strata::bench::Checked(std::malloc(bytes), bytes));
        for (uint32_t k = 0; k < r->payload_len; ++k) r->payload[k] = i * 1000 + k;
        r->id = static_cast<uint32_t>(i);
        table[i] = r;
      }
      out.ops += 3 * table.size();
      for (size_t i = 0; i < table.size(); ++i) {
        Record* r = table[i];
        const uint32_t last = r->payload_len - 1;
        if (r->id != static_cast<uint32_t>(i) || r->payload[0] != i * 1000 ||
            r->payload[last] != i * 1000 + last || r->name[0] != 'a' + static_cast<int>(i % 26)) {
          strata::bench::Fail("record %zu (at %p) corrupt", i, static_cast<void*>(r));
        }
        const size_t name_len = std::strlen(r->name);
        out.checksum += Mix(name_len ^ (uint64_t{r->payload_len} << 8) ^ (uint64_t{r->id} << 16));
        std::free(r->payload);
        delete[] r->name;
        delete r;
      }
    }
  });

  strata::bench::PrintResult(static_cast<int>(threads), results, watch.Seconds());
  return 0;
}
