// A program whose main thread ends with pthread_exit while a worker still
// runs: the process must end when the worker does, with status 0, even
// though strata (preloaded) has started its background release thread. The
// worker frees memory first, which starts that thread.
#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace {

void* Worker(void*) {
  // Free enough to release runs: the background thread starts.
  void* blocks[4096];
  for (int round = 0; round < 8; ++round) {
    for (auto& b : blocks) b = malloc(256);
    for (auto& b : blocks) free(b);
  }
  usleep(200 * 1000);  // outlive main
  std::printf("worker done\n");
  std::fflush(stdout);
  return nullptr;
}

}  // namespace

int main() {
  pthread_t t;
  if (pthread_create(&t, nullptr, &Worker, nullptr) != 0) return 1;
  pthread_detach(t);
  pthread_exit(nullptr);  // the process lives on until the worker ends
}
