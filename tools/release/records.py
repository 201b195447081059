"""The seed's experiment in Python: 100,000 records (dicts) are created and
deleted; resident memory (RSS) is printed before, at the peak, right after
`del records` and after an idle wait. Run it with PYTHONMALLOC=malloc (every
object through malloc, i.e. through strata when it is preloaded) or with
Python's default pymalloc.

    python3 records.py [--records=100000] [--idle_ms=3000]
"""
import gc
import os
import sys
import time


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def flag(name, default):
    for arg in sys.argv[1:]:
        if arg.startswith("--" + name + "="):
            return int(arg.split("=", 1)[1])
    return default


def main():
    n = flag("records", 100000)
    idle_ms = flag("idle_ms", 3000)
    gc.collect()
    before = rss_bytes()
    records = [
        {"id": i, "name": "record-%d" % i, "tags": ["t%d" % (i % 7), "u%d" % (i % 11)],
         "payload": list(range(i % 16)), "score": i * 0.5}
        for i in range(n)
    ]
    peak = rss_bytes()
    del records
    gc.collect()
    freed = rss_bytes()
    time.sleep(idle_ms / 1000.0)
    idle = rss_bytes()
    mib = lambda b: b / (1 << 20)
    print("records: n=%d rss_before=%.1f MiB rss_peak=%.1f MiB rss_after_free=%.1f MiB "
          "rss_after_idle=%.1f MiB" % (n, mib(before), mib(peak), mib(freed), mib(idle)))


if __name__ == "__main__":
    main()
