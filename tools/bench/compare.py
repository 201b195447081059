"""Runs the benchmark workloads under strata and its peers, and compares them.

  bazel run -c opt //tools:compare                       # the full comparison
  bazel run -c opt //tools:compare -- --quick            # a smoke run
  bazel run -c opt //tools:compare -- --help

Every workload (tools/bench/*.cc) runs under each allocator: strata's two
builds and the peers by LD_PRELOAD, glibc with no preload. Allocators are
interleaved within each repetition (their order rotating from one repetition
to the next), so drift in the machine's speed hits all of them alike. Each
run's wall time, CPU time (user + sys) and peak RSS come from wait4()'s
rusage, taken by the small `measure` program that starts the workload (see
measure.cc).

Each allocator belongs to a class (ALLOCATORS below says which): the default
class (fast builds: strata's default build, glibc, jemalloc, ...) or the
checked class (hardened builds that detect invalid and double frees:
strata's checked build, snmalloc's -checks, mimalloc's secure mode). Each
class gets its own tables: medians with each allocator's ratio to strata's
build of that class (peer / strata: above 1 means strata is faster or
smaller), and ratios to the best of the class. One line gives the checked
build's cost: strata-checked's time over strata's.

Written for Debian's /usr/bin/python3 (standard library, plus matplotlib for
the chart); compare.sh starts it from Bazel's runfiles.
"""

import argparse
import csv
import datetime
import json
import math
import os
import platform
import re
import select
import signal
import statistics
import sys
import tempfile
import time

LIBDIR = "/usr/lib/x86_64-linux-gnu"

# The runfiles root (".../compare.runfiles/strata"): this file is
# tools/bench/compare.py in it. abspath, not realpath: runfiles are symlinks.
RUNFILES_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Workload:
    """One row family of the table: a binary, its fixed flags, and its scale."""

    suite = False  # a SuiteProgram row instead

    def __init__(self, name, binary, args, iterations, single_threaded, what):
        self.name = name
        self.binary = binary  # under tools/bench/
        self.args = args  # fixed flags (e.g. --mode=passive)
        # Default --iterations of the comparison; the binaries carry the same
        # defaults for standalone runs, but the runner always passes it.
        self.iterations = iterations
        # Single-threaded workloads run once, at one thread, whatever --threads says.
        self.single_threaded = single_threaded
        self.what = what


# Defaults chosen so that each run takes roughly 0.3-3 s under glibc on a
# 2-core machine (the whole default comparison then takes a few minutes).
WORKLOADS = [
    Workload("larson", "larson", [], 25_000_000, False,
             "server churn: free a random slot, malloc a new 8-1000 B block; slot arrays "
             "change threads every round, so most frees are remote"),
    Workload("xmalloc", "xmalloc", [], 6_000_000, False,
             "half the threads allocate 8-512 B blocks, half free them; batches of 256 "
             "through a bounded queue"),
    Workload("fs_active", "false_sharing", ["--mode=active"], 600_000, False,
             "active false sharing: each thread mallocs 8 B objects and writes them in a "
             "tight loop (slow = objects of different threads share cache lines)"),
    Workload("fs_passive", "false_sharing", ["--mode=passive"], 600_000, False,
             "passive false sharing: as fs_active, after each thread frees an object the "
             "main thread allocated next to the others' ones"),
    Workload("thread_churn", "thread_churn", [], 10_000, False,
             "threads created and joined in generations of t; each leaves 400 blocks "
             "(8-2048 B) for the next generation to free"),
    Workload("pareto", "pareto", [], 16_000_000, False,
             "Pareto(1.1) sizes from 8 B to 1 KiB (half are 8-15 B); half temporaries, "
             "half replace a member of a 4000-block working set"),
    Workload("batch_lifo", "batch_free", ["--order=lifo"], 20_000_000, False,
             "batches of 10,000 blocks (16-256 B) allocated, then freed newest first"),
    Workload("batch_fifo", "batch_free", ["--order=fifo"], 20_000_000, False,
             "batches of 10,000 blocks (16-256 B) allocated, then freed oldest first"),
    Workload("realloc", "realloc_growth", [], 15_000_000, False,
             "16 strings (exact realloc per append) and vectors (x1.5) per thread grown "
             "by 1-64 B appends to 64 B-64 KiB"),
    Workload("large", "large", [], 3_000, False,
             "1-32 MiB blocks (1 in 4 calloc), one byte touched per 64 KiB, 4 live per thread"),
    Workload("st_churn", "st_churn", [], 25_000_000, True,
             "single thread: 256-block working set of 8-128 B churned by "
             "malloc/new[]/calloc and free/delete[]"),
    Workload("records", "records", [], 20, True,
             "the seed's pattern: 100,000 records (header, name, payload: 8-384 B each) "
             "allocated then freed, per round (iterations = rounds)"),
]

# The classes an allocator is compared within, in the order of the report:
# (class, title, anchor, what). `anchor` is strata's build of that class: the
# column the class's tables divide by.
DEFAULT_CLASS, CHECKED_CLASS = "default", "checked"
CLASSES = [
    (DEFAULT_CLASS, "default class", "strata",
     "fast builds: they check only what costs nothing"),
    (CHECKED_CLASS, "checked class", "strata-checked",
     "hardened builds: every invalid, interior and double free detected"),
]
CLASS_NAMES = [c[0] for c in CLASSES]

# Issue 23's target for the checked build: its time over the default build's
# (geometric mean of the rows' ratios) at most this.
CHECKED_COST_TARGET = 1.06


class Allocator:
    """A known allocator: its name, its class, and where its library is: a
    path (strata's from the runfiles, Debian's peers; "" for glibc, which
    needs no preload) or, for the standard peer set, a file name in the lib/
    folder of the --peers directory."""

    def __init__(self, name, cls, path=None, peer_file=None, what=""):
        assert cls in CLASS_NAMES
        self.name = name
        self.cls = cls
        self.path = path
        self.peer_file = peer_file
        self.what = what


# Every allocator the runner knows by name: the one place each one's class is
# declared. Allocators added by path (--lib, --peer) under another name are
# in the default class unless --class says otherwise.
ALLOCATORS = [
    Allocator("strata", DEFAULT_CLASS, os.path.join(RUNFILES_ROOT, "alloc", "libstrata.so"),
              what="strata's default build"),
    Allocator("strata-checked", CHECKED_CLASS,
              os.path.join(RUNFILES_ROOT, "alloc", "libstrata_checked.so"),
              what="strata's checked build"),
    Allocator("glibc", DEFAULT_CLASS, "", what="glibc's malloc (no preload)"),
    Allocator("jemalloc", DEFAULT_CLASS, os.path.join(LIBDIR, "libjemalloc.so.2"),
              what="Debian's jemalloc 5.3"),
    Allocator("tcmalloc", DEFAULT_CLASS, os.path.join(LIBDIR, "libtcmalloc_minimal.so.4"),
              what="Debian's gperftools tcmalloc"),
    Allocator("mimalloc", DEFAULT_CLASS, os.path.join(LIBDIR, "libmimalloc.so.2"),
              what="Debian's mimalloc 2.0.9"),
    # The standard peer set (--peers=DIR): DIR/lib/<file>, as in the shared
    # peers folder (its README says how each was built).
    Allocator("mimalloc-3.4", DEFAULT_CLASS, peer_file="libmimalloc-v3.so",
              what="mimalloc 3.4.3"),
    Allocator("mimalloc-2.4", DEFAULT_CLASS, peer_file="libmimalloc-v2.so",
              what="mimalloc 2.4 (the v2 line)"),
    Allocator("snmalloc", DEFAULT_CLASS, peer_file="libsnmalloc.so", what="snmalloc"),
    Allocator("rpmalloc", DEFAULT_CLASS, peer_file="librpmalloc.so", what="rpmalloc 2.0.1"),
    Allocator("mimalloc-secure", CHECKED_CLASS, peer_file="libmimalloc-v3-secure.so",
              what="mimalloc 3.4.3 in secure mode (MI_SECURE)"),
    Allocator("snmalloc-checks", CHECKED_CLASS, peer_file="libsnmalloc-checks.so",
              what="snmalloc with its client checks"),
]
KNOWN = {a.name: a for a in ALLOCATORS}

# Where a bare --peers looks: the shared peers folder beside the workspace
# (../shared/peers, relative to the workspace under bazel run).
DEFAULT_PEERS_DIR = os.path.join("..", "shared", "peers")

class SuiteProgram:
    """A row from a mimalloc-bench-style suite folder (--suite=DIR): the
    program DIR/bin/PROGRAM run with the suite's standard arguments. `metric`
    says what it reports: "time" rows are judged by wall time; the others
    print a throughput, which the tables turn into a time (seconds per 10^8
    operations, so that lower is better there too)."""

    def __init__(self, name, program, args, threads, metric, stdin=None):
        self.name = name
        self.binary = program
        self.args = args  # "{src}" stands for DIR/src/bench
        self.threads = threads
        self.single_threaded = threads == 1
        self.metric = metric
        self.stdin = stdin
        self.suite = True
        self.what = ("%s, %d thread%s; %s" % (
            program, threads, "" if threads == 1 else "s",
            "wall time" if metric == "time" else "its throughput figure, as s per 1e8 ops"))


# The suite's throughput figures, by metric: a regular expression whose first
# group is the number, and the operations it counts per unit.
SUITE_METRICS = {
    "larson": (r"Throughput = *([0-9.]+) operations per second", 1.0),
    "rptest": (r"([0-9]+) memory ops/CPU second", 1.0),
    "xmalloc": (r"free/sec: *([0-9.]+) M", 1e6),
    "glibcthread": (r"^([0-9]+) iterations", 1.0),
}


def suite_programs(threads):
    """The standard rows of mimalloc-bench's bench/ programs, with `threads`
    standing for N (the machine's CPUs)."""
    n = threads
    return [
        SuiteProgram("cfrac", "cfrac", ["17545186520507317056371138836327483792789"], 1, "time"),
        SuiteProgram("espresso", "espresso", ["{src}/espresso/largest.espresso"], 1, "time"),
        SuiteProgram("barnes", "barnes", [], 1, "time", stdin="{src}/barnes/input"),
        SuiteProgram("larsonN-sized", "larson-sized", ["3", "8", "1000", "5000", "100", "4141", str(n)],
                     n, "larson"),
        SuiteProgram("larsonN", "larson", ["3", "8", "1000", "5000", "100", "4141", str(n)], n, "larson"),
        SuiteProgram("larson8-sized", "larson-sized", ["3", "8", "1000", "5000", "100", "4141", "8"], 8,
                     "larson"),
        SuiteProgram("mstressN", "mstress", [str(n), "50", "400"], n, "time"),
        SuiteProgram("rptestN", "rptest", [str(n), "0", "1", "2", "500", "1000", "100", "8", "16000"], n,
                     "rptest"),
        SuiteProgram("xmalloc-testN", "xmalloc-test", ["-w", str(max(1, n // 2)), "-t", "3", "-s", "64"],
                     n, "xmalloc"),
        SuiteProgram("xmalloc-test8", "xmalloc-test", ["-w", "4", "-t", "3", "-s", "64"], 8, "xmalloc"),
        SuiteProgram("cache-scratch1", "cache-scratch", ["1", "1000", "1", "2000000", str(n)], 1, "time"),
        SuiteProgram("cache-scratchN", "cache-scratch", [str(n), "1000", "1", "2000000", str(n)], n, "time"),
        SuiteProgram("cache-thrash1", "cache-thrash", ["1", "1000", "1", "2000000", str(n)], 1, "time"),
        SuiteProgram("cache-thrashN", "cache-thrash", [str(n), "1000", "1", "2000000", str(n)], n, "time"),
        SuiteProgram("alloc-test1", "alloc-test", ["1"], 1, "time"),
        SuiteProgram("alloc-testN", "alloc-test", [str(n)], n, "time"),
        SuiteProgram("glibc-simple", "glibc-simple", [], 1, "time"),
        SuiteProgram("glibc-thread", "glibc-thread", [str(n)], n, "glibcthread"),
        SuiteProgram("malloc-large", "malloc-large", [], 1, "time"),
    ]


def suite_figure(metric, stdout):
    """The throughput a suite program printed (operations per second), or None."""
    pattern, unit = SUITE_METRICS[metric]
    found = re.findall(pattern, stdout, re.MULTILINE)
    return float(found[-1]) * unit if found else None


# Runs one command and reports its rusage (see measure.cc).
MEASURE = os.path.join(RUNFILES_ROOT, "tools", "bench", "measure")

# Above this many CPUs busy with other work on average, the report warns that
# wall times are noisy.
BUSY_WARNING = 0.25
# A run during which other processes kept more CPUs than this busy is set
# aside when its cell has undisturbed runs (they double wall times here).
DISTURBED = 0.5
# Runs shorter than this are not judged (/proc/stat's ticks are too coarse).
MIN_WALL_FOR_LOAD = 0.25

# What the dynamic loader prints when it cannot preload a library (and then
# carries on with glibc's malloc, which would silently measure the wrong thing).
PRELOAD_ERROR = "cannot be preloaded"


class Failure(Exception):
    """A run that failed or disagreed; the message names workload and allocator."""


def parse_args(argv):
    names = [w.name for w in WORKLOADS]
    p = argparse.ArgumentParser(
        prog="compare",
        description="Compare strata's two builds with glibc, jemalloc, tcmalloc and mimalloc "
                    "(and with --peers, the strongest peers and their checked builds) on the "
                    "benchmark workloads in tools/bench (LD_PRELOAD). Each class of "
                    "allocators gets its own tables: the default class (fast builds) beside "
                    "strata, the checked class (hardened builds) beside strata-checked, with "
                    "medians, each one's ratio to strata's build of its class (peer/strata: "
                    "> 1 means strata wins) and to the best of the class; one line gives "
                    "strata-checked's time over strata's. Writes the tables as Markdown, the "
                    "raw runs as CSV and JSON, and a chart as PNG.",
        epilog="workloads: " + ", ".join(names) + "\n"
               "examples:\n"
               "  bazel run -c opt //tools:compare\n"
               "  bazel run -c opt //tools:compare -- --quick --workloads=larson,xmalloc\n"
               "  bazel run -c opt //tools:compare -- --allocators=strata,mimalloc --repeats=5\n"
               "  bazel run -c opt //tools:compare -- --lib=strata-old=/tmp/libstrata.so\n"
               "  bazel run -c opt //tools:compare -- --peers=/work/shared/peers\n"
               "  bazel run -c opt //tools:compare -- --suite=../shared/peers \\\n"
               "      --peer=mi3=../shared/peers/lib/libmimalloc-v3.so\n"
               "standard peer set (--peers=DIR, from DIR/lib):\n" +
               "".join("  %-16s %-8s %-26s %s\n" % (a.name, a.cls, a.peer_file, a.what)
                       for a in ALLOCATORS if a.peer_file),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="2,8",
                   help="comma-separated thread counts for the multithreaded workloads "
                        "(default 2,8); single-threaded ones always run at 1")
    p.add_argument("--repeats", type=int, default=None,
                   help="runs of each workload x allocator; the table shows medians "
                        "(default 3; 1 with --quick)")
    p.add_argument("--workloads", default="",
                   help="comma-separated subset of the workloads (default: all)")
    p.add_argument("--allocators", default="",
                   help="comma-separated subset of %s and any --lib, --peer or --peers names "
                        "(default: all)" % ",".join(a.name for a in ALLOCATORS if not a.peer_file))
    p.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                   help="preload PATH as allocator NAME: replaces a built-in one (e.g. "
                        "strata=/tmp/libstrata.so) or adds one; repeatable")
    p.add_argument("--peer", action="append", default=[], metavar="NAME=PATH",
                   help="add PATH (a preloadable malloc, e.g. a mimalloc or snmalloc build) as "
                        "allocator NAME; repeatable (the same as --lib)")
    p.add_argument("--peers", nargs="?", const="", default=None, metavar="DIR",
                   help="add every library of the standard peer set found in DIR/lib (or DIR), "
                        "each in its class (listed below); a bare --peers means %s, relative "
                        "to the workspace" % DEFAULT_PEERS_DIR)
    p.add_argument("--class", dest="classes", action="append", default=[],
                   metavar="NAME=CLASS",
                   help="put allocator NAME (e.g. one added with --lib) in class CLASS, %s; "
                        "repeatable (names the runner does not know are in the default class)"
                        % " or ".join(CLASS_NAMES))
    p.add_argument("--env", action="append", default=[], metavar="NAME:VAR=VALUE",
                   help="set VAR=VALUE in the environment of allocator NAME's runs only, e.g. "
                        "--lib=strata-prof=LIB --env=strata-prof:STRATA_PROFILE_SAMPLE_BYTES=2m "
                        "(the same library under two settings, in one run); repeatable")
    p.add_argument("--suite", default=None, metavar="DIR",
                   help="also run the programs of a mimalloc-bench-style folder (DIR/bin/*, "
                        "inputs in DIR/src/bench) and fold their rows into the tables")
    p.add_argument("--suite-only", action="store_true",
                   help="with --suite: run only the suite's rows")
    p.add_argument("--suite-rows", default="",
                   help="with --suite: comma-separated subset of the suite's rows")
    p.add_argument("--scale", type=float, default=None,
                   help="multiply every workload's iterations (default 1; 0.05 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --scale=0.05 and --repeats=1 unless given")
    p.add_argument("--seed", type=int, default=1, help="seed passed to every workload (default 1)")
    p.add_argument("--timeout", type=float, default=300,
                   help="seconds before a single run is killed and reported (default 300)")
    p.add_argument("--out-dir", default=None,
                   help="where the default output files go (default: bench-results/ in the "
                        "workspace under bazel run, else in the current directory)")
    p.add_argument("--markdown", default=None, help="Markdown table (default OUT_DIR/compare.md)")
    p.add_argument("--chart", default=None, help="PNG chart (default OUT_DIR/compare.png)")
    p.add_argument("--csv", default=None, help="raw runs as CSV (default OUT_DIR/compare.csv)")
    p.add_argument("--json", default=None, help="raw runs as JSON (default OUT_DIR/compare.json)")
    p.add_argument("--keep-disturbed", action="store_true",
                   help="use every run in the medians; by default a run during which other "
                        "processes kept more than %g CPU busy is left out of a cell that has "
                        "undisturbed runs" % DISTURBED)
    p.add_argument("--no-chart", action="store_true", help="skip the chart")
    p.add_argument("--verbose", action="store_true", help="print each run's result line")
    p.add_argument("--list", action="store_true", help="list workloads and allocators, then exit")
    args = p.parse_args(argv)

    try:
        args.thread_counts = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    except ValueError:
        p.error("--threads takes comma-separated integers, e.g. 2,8")
    if not args.thread_counts or min(args.thread_counts) < 1:
        p.error("--threads needs at least one count >= 1")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.scale is None:
        args.scale = 0.05 if args.quick else 1.0
    if args.repeats < 1 or args.scale <= 0 or args.timeout <= 0:
        p.error("--repeats, --scale and --timeout must be positive")

    args.allocator_paths = {a.name: a.path for a in ALLOCATORS if not a.peer_file}
    args.allocator_order = [a.name for a in ALLOCATORS if not a.peer_file]
    args.allocator_class = {a.name: a.cls for a in ALLOCATORS}
    if args.peers is not None:
        peers_dir = (resolve_user_path(args.peers) if args.peers
                     else resolve_workspace_path(DEFAULT_PEERS_DIR))
        if not os.path.isdir(peers_dir):
            p.error("--peers: %s is not a folder" % peers_dir)
        found = 0
        for a in ALLOCATORS:
            if not a.peer_file:
                continue
            path = next((c for c in (os.path.join(peers_dir, "lib", a.peer_file),
                                     os.path.join(peers_dir, a.peer_file)) if os.path.isfile(c)),
                        None)
            if path is None:
                note("%s skipped: no %s in %s/lib" % (a.name, a.peer_file, peers_dir))
                continue
            found += 1
            args.allocator_order.append(a.name)
            args.allocator_paths[a.name] = path
        if not found:
            p.error("--peers: none of %s in %s/lib" % (
                ", ".join(a.peer_file for a in ALLOCATORS if a.peer_file), peers_dir))
    for spec in args.lib + args.peer:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            p.error("--lib and --peer take NAME=PATH, got %r" % spec)
        if name not in args.allocator_paths:
            args.allocator_order.append(name)
        args.allocator_paths[name] = resolve_user_path(path)
    for spec in args.classes:
        name, sep, cls = spec.partition("=")
        if not sep or cls not in CLASS_NAMES:
            p.error("--class takes NAME=%s, got %r" % ("|".join(CLASS_NAMES), spec))
        if name not in args.allocator_paths:
            p.error("--class: no allocator named %r" % name)
        args.allocator_class[name] = cls
    for name in args.allocator_order:
        args.allocator_class.setdefault(name, DEFAULT_CLASS)

    args.allocator_env = {}
    for spec in args.env:
        name, sep, assignment = spec.partition(":")
        var, eq, value = assignment.partition("=")
        if not sep or not name or not eq or not var:
            p.error("--env takes NAME:VAR=VALUE, got %r" % spec)
        if name not in args.allocator_paths:
            p.error("--env: no allocator named %r (add it with --lib first)" % name)
        args.allocator_env.setdefault(name, {})[var] = value

    if args.workloads:
        wanted = [w.strip() for w in args.workloads.split(",") if w.strip()]
        unknown = [w for w in wanted if w not in names]
        if unknown:
            p.error("unknown workload(s) %s; choose from %s" % (", ".join(unknown), ", ".join(names)))
        args.workload_list = [w for w in WORKLOADS if w.name in wanted]
    else:
        args.workload_list = list(WORKLOADS)
    args.suite_list = []
    if args.suite:
        args.suite_dir = resolve_user_path(args.suite)
        if not os.path.isdir(os.path.join(args.suite_dir, "bin")):
            p.error("--suite: %s has no bin/ folder of suite programs" % args.suite_dir)
        programs = suite_programs(os.cpu_count() or 2)
        if args.suite_rows:
            wanted = [w.strip() for w in args.suite_rows.split(",") if w.strip()]
            known = [w.name for w in programs]
            unknown = [w for w in wanted if w not in known]
            if unknown:
                p.error("unknown suite row(s) %s; choose from %s" % (", ".join(unknown), ", ".join(known)))
            programs = [w for w in programs if w.name in wanted]
        missing = [w.binary for w in programs
                   if not os.access(os.path.join(args.suite_dir, "bin", w.binary), os.X_OK)]
        for program in sorted(set(missing)):
            note("suite program %s is not in %s/bin: its rows are skipped" % (program, args.suite_dir))
        args.suite_list = [w for w in programs if w.binary not in missing]
        if args.suite_only:
            args.workload_list = []
    elif args.suite_only or args.suite_rows:
        p.error("--suite-only and --suite-rows need --suite=DIR")
    if args.allocators:
        wanted = [a.strip() for a in args.allocators.split(",") if a.strip()]
        unknown = [a for a in wanted if a not in args.allocator_paths]
        if unknown:
            hint = ""
            if any(a in KNOWN and KNOWN[a].peer_file for a in unknown):
                hint = " (the standard peers need --peers=DIR)"
            p.error("unknown allocator(s) %s; choose from %s%s"
                    % (", ".join(unknown), ", ".join(args.allocator_order), hint))
        args.allocator_order = [a for a in args.allocator_order if a in wanted]
    return args


def resolve_user_path(path):
    """Relative paths are the user's: bazel run starts us in the runfiles."""
    base = os.environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd()
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def resolve_workspace_path(path):
    """Relative to the workspace under bazel run (where DEFAULT_PEERS_DIR
    is meant), else to the current folder."""
    base = os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.getcwd()
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))


def default_out_dir():
    return os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY") or
                        os.environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd(), "bench-results")


def note(message):
    print("compare: " + message, file=sys.stderr, flush=True)


# ---- Running one process ----------------------------------------------------

def run_once(argv, preload, timeout, extra_env=None, stdin=None):
    """Runs argv to completion through `measure`, in a temporary working
    folder of its own (suite programs may write files); returns its wait
    status, times, peak RSS and output."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env.update(extra_env or {})
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.join(tmp, "work")
        os.mkdir(work)
        result = os.path.join(tmp, "result")
        out_path = os.path.join(tmp, "stdout")
        err_path = os.path.join(tmp, "stderr")
        measure = [MEASURE, "--out=" + result, "--preload=" + (preload or ""), "--"] + argv
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, stdin or os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_OPEN, 2, err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        ]
        busy_before = system_busy_seconds()
        # Its own process group, so that a timeout kills the workload too.
        cwd = os.getcwd()
        os.chdir(work)  # the child inherits it
        try:
            pid = os.posix_spawn(MEASURE, measure, env, file_actions=actions, setpgroup=0)
        finally:
            os.chdir(cwd)
        # A pidfd becomes readable when measure exits: wait with a timeout.
        pidfd = os.pidfd_open(pid)
        try:
            timed_out = not select.select([pidfd], [], [], timeout)[0]
            if timed_out:
                os.killpg(pid, signal.SIGKILL)  # not reaped yet: the group is still ours
            _, measure_status, _ = os.wait4(pid, 0)
        finally:
            os.close(pidfd)
        busy = system_busy_seconds() - busy_before
        with open(out_path, errors="replace") as f:
            stdout = f.read()
        with open(err_path, errors="replace") as f:
            stderr = f.read()
        fields = {}
        if os.path.exists(result):
            with open(result) as f:
                fields = dict(kv.split("=", 1) for kv in f.read().split() if "=" in kv)
    if not timed_out and (measure_status != 0 or "status" not in fields):
        raise Failure("measure failed (%s) on: %s\n%s" % (
            describe_status(measure_status), command_text(argv, preload), indent(stderr[-2000:])))
    user = float(fields.get("user_s", "nan"))
    system = float(fields.get("sys_s", "nan"))
    wall = float(fields.get("wall_s", "nan"))
    return {
        "status": int(fields.get("status", -1)),
        "timed_out": timed_out,
        "wall_s": wall,
        "user_s": user,
        "sys_s": system,
        "cpu_s": user + system,
        "maxrss_kib": int(fields.get("maxrss_kib", -1)),  # KiB on Linux
        # CPUs kept busy by everything else on the machine meanwhile: other
        # work steals time from the workload and makes its wall time noisy.
        # /proc/stat counts in ticks (10 ms): too coarse for short runs.
        "other_cpus": (max(0.0, busy - user - system) / wall
                       if wall >= MIN_WALL_FOR_LOAD else None),
        "stdout": stdout,
        "stderr": stderr,
    }


def system_busy_seconds():
    """CPU seconds spent by the whole machine (all CPUs, not idle), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest time is already counted in user: the first 8 fields are the total.
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def describe_status(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return "was killed by signal %d (%s)" % (sig, signal.Signals(sig).name)
        except ValueError:
            return "was killed by signal %d" % sig
    return "exited with status %d" % os.WEXITSTATUS(status)


def parse_result(stdout):
    """The workload's result line: bench=... threads=... ops=... checksum=... time_s=..."""
    for line in stdout.splitlines():
        if line.startswith("bench="):
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if {"ops", "checksum", "time_s"} <= fields.keys():
                return fields
    return None


def command_text(argv, preload):
    return ("LD_PRELOAD=%s " % preload if preload else "") + " ".join(argv)


# ---- The comparison ---------------------------------------------------------

def plan_rows(args):
    """(workload, threads) pairs in table order."""
    rows = []
    for w in args.workload_list:
        for t in ([1] if w.single_threaded else args.thread_counts):
            rows.append((w, t))
    rows += [(w, w.threads) for w in args.suite_list]
    return rows


def suite_path(args, text):
    """A suite row's argument or input with "{src}" standing for DIR/src/bench."""
    return text.replace("{src}", os.path.join(args.suite_dir, "src", "bench"))


def workload_argv(w, threads, args):
    if w.suite:
        return ([os.path.join(args.suite_dir, "bin", w.binary)] +
                [suite_path(args, a) for a in w.args])
    iterations = max(1, int(round(w.iterations * args.scale)))
    return ([os.path.join(RUNFILES_ROOT, "tools", "bench", w.binary)] + w.args +
            ["--threads=%d" % threads, "--iterations=%d" % iterations, "--seed=%d" % args.seed])


def check_strata_serves(path, args):
    """A preload that silently failed would measure glibc under strata's name:
    check once, from strata's exit statistics, that it really served a run."""
    st = next(w for w in WORKLOADS if w.name == "st_churn")
    with tempfile.TemporaryDirectory() as tmp:
        stats = os.path.join(tmp, "stats")
        argv = [os.path.join(RUNFILES_ROOT, "tools", "bench", st.binary),
                "--iterations=1000", "--seed=%d" % args.seed]
        r = run_once(argv, path, args.timeout, {"STRATA_STATS_ON_EXIT": stats})
        text = open(stats).read() if os.path.exists(stats) else ""
    if r["status"] != 0 or "strata: statistics at exit" not in text:
        raise Failure("%s did not serve a test run (%s; no statistics at exit)\n  command: %s\n%s"
                      % (path, describe_status(r["status"]), command_text(argv, path),
                         r["stderr"][-2000:]))


def available_allocators(args):
    chosen = []
    for name in args.allocator_order:
        path = args.allocator_paths[name]
        if path and not os.path.isfile(path):
            note("%s skipped: %s not found" % (name, path))
            continue
        chosen.append((name, path))
    return chosen


def build_mode_note(path):
    """bazel-out/k8-fastbuild/... means the user forgot -c opt."""
    real = os.path.realpath(path)
    for mode in ("-fastbuild", "-dbg"):
        if mode + os.sep in real:
            return "%s is a%s build (%s); run with `bazel run -c opt` for representative numbers" % (
                os.path.basename(path), "" if mode == "-fastbuild" else " debug",
                mode.lstrip("-"))
    return None


def run_comparison(args, allocators, rows, results):
    """Runs every row under every allocator, appending each run to results."""
    # (workload, threads) -> (allocator, ops, checksum) of the first run.
    expected = {}
    total = len(rows) * len(allocators) * args.repeats
    width = len(str(total))
    done = 0
    for rep in range(args.repeats):
        # Rotate the allocators' order each repetition: nobody always goes first.
        k = rep % len(allocators)
        order = allocators[k:] + allocators[:k]
        for w, threads in rows:
            for name, path in order:
                done += 1
                label = "[%*d/%d] %s t=%d %s rep %d/%d" % (
                    width, done, total, w.name, threads, name, rep + 1, args.repeats)
                print(label, end="", file=sys.stderr, flush=True)
                argv = workload_argv(w, threads, args)
                suite = w.suite
                stdin = suite_path(args, w.stdin) if suite and w.stdin else None
                r = run_once(argv, path, args.timeout, args.allocator_env.get(name),
                             stdin=stdin)
                print("  %.3f s" % r["wall_s"], file=sys.stderr, flush=True)
                record = {
                    "rep": rep + 1, "workload": w.name, "threads": threads, "allocator": name,
                    "wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "user_s": r["user_s"],
                    "sys_s": r["sys_s"], "maxrss_kib": r["maxrss_kib"],
                    "other_cpus": (None if r["other_cpus"] is None
                                   else round(r["other_cpus"], 3)),
                }
                results.append(record)
                where = "workload %s (t=%d) under %s" % (w.name, threads, name)
                command = command_text(argv, path)
                if r["timed_out"]:
                    raise Failure("%s timed out after %g s\n  command: %s"
                                  % (where, args.timeout, command))
                if r["status"] != 0:
                    raise Failure("%s %s\n  command: %s\n  stderr (tail):\n%s"
                                  % (where, describe_status(r["status"]), command,
                                     indent(r["stderr"][-3000:])))
                if PRELOAD_ERROR in r["stderr"]:
                    raise Failure("%s: the loader could not preload %s\n%s"
                                  % (where, path, indent(r["stderr"][-2000:])))
                if suite:
                    record["suite_wall_s"] = r["wall_s"]
                    if w.metric != "time":
                        figure = suite_figure(w.metric, r["stdout"])
                        if not figure:
                            raise Failure("%s printed no throughput figure\n  command: %s\n"
                                          "  stdout:\n%s" % (where, command,
                                                              indent(r["stdout"][-2000:])))
                        # Lower is better in every table: seconds per 1e8 operations.
                        record["wall_s"] = 1e8 / figure
                        record["ops"] = int(figure)
                    record["checksum"] = "-"  # suite programs print none
                    if args.verbose:
                        print("    " + r["stdout"].strip()[-500:], file=sys.stderr)
                    continue
                fields = parse_result(r["stdout"])
                if fields is None:
                    raise Failure("%s printed no result line\n  command: %s\n  stdout:\n%s"
                                  % (where, command, indent(r["stdout"][-2000:])))
                record.update(ops=int(fields["ops"]), checksum=fields["checksum"],
                              self_time_s=float(fields["time_s"]))
                if args.verbose:
                    print("    " + r["stdout"].strip(), file=sys.stderr)
                key = (w.name, threads)
                if key not in expected:
                    expected[key] = (name, record["ops"], record["checksum"])
                else:
                    first, ops, checksum = expected[key]
                    if (record["ops"], record["checksum"]) != (ops, checksum):
                        raise Failure(
                            "%s: checksum %s (ops %d) differs from %s under %s (ops %d): the "
                            "workload is deterministic, so one allocator returned wrong memory"
                            "\n  command: %s"
                            % (where, record["checksum"], record["ops"], checksum, first, ops,
                               command))


def indent(text):
    return "\n".join("    " + line for line in text.rstrip().splitlines())


# ---- Tables -----------------------------------------------------------------

def undisturbed(runs, keep_all):
    """The runs a cell's medians use: those during which other processes kept
    at most DISTURBED CPUs busy, when there are any (the choice rests on the
    machine, never on the measured times); all of them with keep_all."""
    calm = [r for r in runs if (r.get("other_cpus") or 0.0) <= DISTURBED]
    return runs if keep_all or not calm else calm


def medians(results, keep_all=False):
    """(workload, threads, allocator) -> {metric: median} and relative spread."""
    groups = {}
    for r in results:
        if "checksum" not in r:
            continue
        groups.setdefault((r["workload"], r["threads"], r["allocator"]), []).append(r)
    out = {}
    for key, all_runs in groups.items():
        runs = undisturbed(all_runs, keep_all)
        m = {"runs_used": len(runs), "runs": len(all_runs)}
        for metric in ("wall_s", "cpu_s", "maxrss_kib"):
            values = [run[metric] for run in runs]
            med = statistics.median(values)
            m[metric] = med
            # (max - min) / median over the repetitions: how much to trust it.
            m[metric + "_spread"] = (max(values) - min(values)) / med if med > 0 and len(values) > 1 else None
        out[key] = m
    return out


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


METRICS = {
    "wall_s": ("Time", "median wall seconds", lambda v: "%.3f" % v),
    "maxrss_kib": ("Peak RSS", "median MiB", lambda v: "%.1f" % (v / 1024.0)),
    "cpu_s": ("CPU time", "median user+sys seconds", lambda v: "%.3f" % v),
}


def table(metric, rows, med, allocators, base):
    """Markdown table (list of lines) of one metric, with geometric-mean rows."""
    fmt = METRICS[metric][2]
    names = [a for a, _ in allocators]
    header = ["workload", "t"] + [n if n == base else "%s (/%s)" % (n, base) for n in names] + ["spread"]
    lines = []
    for w, t in rows:
        cells = [w.name, str(t)]
        b = med.get((w.name, t, base), {}).get(metric)
        spreads = []
        for n in names:
            m = med.get((w.name, t, n))
            if m is None:
                cells.append("-")
                continue
            if m[metric + "_spread"] is not None:
                spreads.append(m[metric + "_spread"])
            if n == base or not b:
                cells.append(fmt(m[metric]))
            else:
                cells.append("%s (%.2f)" % (fmt(m[metric]), m[metric] / b))
        cells.append("%.0f%%" % (100 * max(spreads)) if spreads else "-")
        lines.append(cells)

    def ratio_row(label, selected):
        cells = [label, ""]
        for n in names:
            if n == base:
                cells.append("(1.00)")
                continue
            ratios = []
            for w, t in selected:
                b = med.get((w.name, t, base), {}).get(metric)
                p = med.get((w.name, t, n), {}).get(metric)
                if b and p:
                    ratios.append(p / b)
            g = geomean(ratios)
            cells.append("(%.2f)" % g if g else "-")
        cells.append("")
        return cells

    footer = []
    if len(names) == 1:
        pass  # nothing to divide: no ratio rows
    elif metric in ("wall_s", "cpu_s"):
        footer.append(ratio_row("**geomean, all**", rows))
        mt = [(w, t) for w, t in rows if t > 1]
        if mt and len(mt) != len(rows):
            footer.append(ratio_row("**geomean, t>1**", mt))
    else:
        footer.append(ratio_row("**geomean**", rows))
    return render([header] + lines + footer, numeric_from=1)


def best_table(metric, rows, med, allocators):
    """Markdown table (list of lines): each allocator's median over the best
    median of its row (1.00 = best; the field's suite reports ratios this
    way), with the geometric mean over the rows where every allocator ran."""
    fmt = "%.2f"
    names = [a for a, _ in allocators]
    header = ["workload", "t"] + names
    lines = []
    ratios = {n: [] for n in names}
    for w, t in rows:
        values = {n: med.get((w.name, t, n), {}).get(metric) for n in names}
        present = [v for v in values.values() if v]
        if not present:
            continue
        best = min(present)
        cells = [w.name, str(t)]
        for n in names:
            v = values[n]
            cells.append(fmt % (v / best) if v else "-")
        if len(present) == len(names):
            for n in names:
                ratios[n].append(values[n] / best)
        lines.append(cells)
    footer = ["**geomean**", ""]
    for n in names:
        g = geomean(ratios[n])
        footer.append("**%s**" % (fmt % g) if g else "-")
    return render([header] + lines + [footer], numeric_from=1)


class ClassGroup:
    """The allocators of one class in this run: `members` ((name, path), in
    run order) and `base`, the column its tables divide by (strata's build
    of the class, or the class's first allocator when that one is not run)."""

    def __init__(self, cls, title, what, anchor, members):
        self.cls = cls
        self.title = title
        self.what = what
        self.anchor = anchor
        self.members = members
        names = [n for n, _ in members]
        self.base = anchor if anchor in names else names[0]

    def heading(self):
        return "%s (%s): %s" % (self.title, self.what, ", ".join(n for n, _ in self.members))


def class_groups(allocators, allocator_class):
    """A ClassGroup for each class that has allocators, in CLASSES order."""
    groups = []
    for cls, title, anchor, what in CLASSES:
        members = [(n, p) for n, p in allocators if allocator_class[n] == cls]
        if members:
            groups.append(ClassGroup(cls, title, what, anchor, members))
    return groups


def cost_pair(allocators):
    """(checked, default): strata's two builds when both run, else None."""
    anchors = {cls: anchor for cls, _, anchor, _ in CLASSES}
    names = [n for n, _ in allocators]
    pair = (anchors[CHECKED_CLASS], anchors[DEFAULT_CLASS])
    return pair if all(n in names for n in pair) else None


COST_METRICS = [("wall_s", "time"), ("cpu_s", "CPU time"), ("maxrss_kib", "peak RSS")]


def checked_cost(rows, med, pair):
    """{metric: (geomean of the rows' ratios checked / default, rows)}."""
    checked, default = pair
    out = {}
    for metric, _ in COST_METRICS:
        ratios = []
        for w, t in rows:
            c = med.get((w.name, t, checked), {}).get(metric)
            d = med.get((w.name, t, default), {}).get(metric)
            if c and d:
                ratios.append(c / d)
        out[metric] = (geomean(ratios), len(ratios))
    return out


def cost_text(rows, med, pair):
    """The one line on the checked build's cost, or None."""
    cost = checked_cost(rows, med, pair)
    g, n = cost["wall_s"]
    if not g:
        return None
    parts = ["time %.2fx (target <= %.2fx: %s)" % (
        g, CHECKED_COST_TARGET, "within" if g <= CHECKED_COST_TARGET else "OVER")]
    for metric, label in COST_METRICS[1:]:
        if cost[metric][0]:
            parts.append("%s %.2fx" % (label, cost[metric][0]))
    return "%s / %s, the checked build's cost (geomean of %d rows' ratios): %s" % (
        pair[0], pair[1], n, ", ".join(parts))


def cost_table(rows, med, pair):
    """Markdown table (list of lines): each row's ratio checked / default."""
    checked, default = pair
    header = ["workload", "t"] + [label for _, label in COST_METRICS]
    lines = []
    for w, t in rows:
        cells = [w.name, str(t)]
        for metric, _ in COST_METRICS:
            c = med.get((w.name, t, checked), {}).get(metric)
            d = med.get((w.name, t, default), {}).get(metric)
            cells.append("%.2f" % (c / d) if c and d else "-")
        lines.append(cells)
    cost = checked_cost(rows, med, pair)
    footer = ["**geomean**", ""] + [
        "**%.2f**" % cost[m][0] if cost[m][0] else "-" for m, _ in COST_METRICS]
    return render([header] + lines + [footer], numeric_from=1)


def render(cells, numeric_from):
    """Markdown with padded columns, so it reads well in a terminal too."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    out = []
    for k, row in enumerate(cells):
        padded = [c.ljust(widths[i]) if i < numeric_from else c.rjust(widths[i])
                  for i, c in enumerate(row)]
        out.append("| " + " | ".join(padded) + " |")
        if k == 0:
            out.append("|" + "|".join(("-" * (widths[i] + 1) + ":") if i >= numeric_from
                                      else ("-" * (widths[i] + 2)) for i in range(len(row))) + "|")
    return out


def shown_path(path):
    """A library's path for the report: runfiles paths by their Bazel label."""
    if not path:
        return "no preload"
    if path.startswith(RUNFILES_ROOT + os.sep):
        rel = os.path.relpath(path, RUNFILES_ROOT)
        label = "//%s:%s" % (os.path.dirname(rel), os.path.basename(rel))
        real = os.path.realpath(path)
        for mode in ("k8-opt", "k8-fastbuild", "k8-dbg"):
            if os.sep + mode + os.sep in real:
                return "%s, %s" % (label, mode)
        return label
    return path


def interference(results):
    """(mean, max) CPUs used by other processes during the runs, or None."""
    values = [r["other_cpus"] for r in results if r.get("other_cpus") is not None]
    if not values:
        return None
    return sum(values) / len(values), max(values)


def interference_text(results, med, keep_all):
    busy = interference(results)
    if busy is None:
        return None
    mean, peak = busy
    text = ("other processes kept %.2f of %d CPUs busy on average during the runs (at most %.2f)"
            % (mean, os.cpu_count() or 0, peak))
    set_aside = sum(m["runs"] - m["runs_used"] for m in med.values())
    if set_aside:
        text += ("; %d of %d runs, disturbed (> %g CPU busy elsewhere), were left out of "
                 "medians that had undisturbed runs" % (set_aside, len(results), DISTURBED))
    elif keep_all:
        text += "; every run counts (--keep-disturbed)"
    if mean > BUSY_WARNING:
        text += ("; wall times are noisy (see the spread column): CPU times are steadier, or "
                 "rerun on a quiet machine")
    return text


def report(args, rows, med, allocators, groups, elapsed, chart_path, results):
    """The Markdown report (list of lines); the terminal gets the tables."""
    lines = []
    lines.append("# strata vs. peers: benchmark comparison")
    lines.append("")
    lines.append("- date: %s; host: %s, %d CPUs, Linux %s; python %s" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), platform.node(), os.cpu_count() or 0,
        platform.release(), platform.python_version()))
    lines.append("- command: `compare %s`" % " ".join(sys.argv[1:]) if sys.argv[1:] else
                 "- command: `compare` (defaults)")
    lines.append("- %d repetition(s) per cell, allocators interleaved; thread counts %s; "
                 "scale %g; seed %d; whole run %.0f s" % (
                     args.repeats, ",".join(map(str, args.thread_counts)), args.scale, args.seed,
                     elapsed))
    busy = interference_text(results, med, args.keep_disturbed)
    if busy:
        lines.append("- machine: " + busy)
    for g in groups:
        lines.append("- %s (%s): %s" % (g.title, g.what, ", ".join(
            "%s (%s)" % (n, shown_path(p)) for n, p in g.members)))
    lines.append("- each class has its own tables, so that each build is compared with its own "
                 "kind. Cells: median; an allocator's cell also shows its ratio to strata's "
                 "build of its class in parentheses (peer / strata: above 1 means strata is "
                 "faster or smaller). `spread`: the largest (max - min) / median over the "
                 "row's allocators, among the runs used.")
    pair = cost_pair(allocators)
    cost = cost_text(rows, med, pair) if pair else None
    if cost:
        lines.append("- " + cost)
    lines.append("")
    for g in groups:
        lines.append("## %s" % g.heading()[0].upper() + g.heading()[1:])
        lines.append("")
        for metric in ("wall_s", "cpu_s", "maxrss_kib"):
            title, unit, _ = METRICS[metric]
            lines.append("### %s (%s; ratios to %s)" % (title, unit, g.base))
            lines.append("")
            lines.extend(table(metric, rows, med, g.members, g.base))
            lines.append("")
        if len(g.members) < 2:
            lines.append("(%s alone in the %s: no ratios to the best; `--peers=DIR` adds its "
                         "peers)" % (g.base, g.title))
            lines.append("")
            continue
        for metric in ("wall_s", "maxrss_kib"):
            lines.append("### %s, ratio to the best of the %s in each row"
                         % (METRICS[metric][0], g.title))
            lines.append("")
            lines.extend(best_table(metric, rows, med, g.members))
            lines.append("")
    if cost:
        lines.append("## The checked build's cost: %s / %s" % pair)
        lines.append("")
        lines.append(cost + ". Per row:")
        lines.append("")
        lines.extend(cost_table(rows, med, pair))
        lines.append("")
    lines.append("## Workloads")
    lines.append("")
    for w in args.suite_list:
        lines.append("- `%s` (suite: `%s %s`%s): %s" % (
            w.name, w.binary, " ".join(w.args), " < " + w.stdin if w.stdin else "", w.what))
    for w in args.workload_list:
        lines.append("- `%s` (`tools/bench/%s %s--iterations=%d`%s): %s" % (
            w.name, w.binary, "".join(a + " " for a in w.args),
            max(1, int(round(w.iterations * args.scale))),
            ", 1 thread" if w.single_threaded else "", w.what))
    if chart_path:
        lines.append("")
        lines.append("![ratios within each class](%s)" % os.path.basename(chart_path))
    return lines


# ---- Chart ------------------------------------------------------------------

# Ratio axis ticks (log scale), thinned to powers of two over wide ranges.
NICE_TICKS = [0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3, 4, 6, 8, 10, 16, 32, 64]

class Panel:
    """One panel of the chart: bars of ratios numerator / denominator, one
    series per (label, metric, numerator, denominator), over `rows`."""

    def __init__(self, title, ylabel, rows, series, legend=False, by_thread=False, target=None):
        self.title = title
        self.ylabel = ylabel
        self.rows = rows
        self.series = series
        self.legend = legend        # the first panel of a class shows the legend
        self.by_thread = by_thread  # one thread count: multithreaded rows by name alone
        self.target = target        # a dashed line at this ratio


def chart_panels(rows, med, groups, pair):
    """The chart: each class's peers over strata's build of the class (time
    per thread count, peak RSS), then the checked build's cost."""
    panels = []
    # One time panel per thread count; single-threaded rows close every panel
    # (repeated, so that each panel stands alone and none is nearly empty).
    single = [r for r in rows if r[0].single_threaded]
    counts = sorted({t for w, t in rows if not w.single_threaded})
    for g in groups:
        peers = [n for n, _ in g.members if n != g.base]
        if not peers:
            continue
        wins = "above 1: %s wins" % g.base
        ylabel = "peer / %s" % g.base
        time_series = [(n, "wall_s", n, g.base) for n in peers]
        time_panels = [Panel("%s: time relative to %s, t=%d (%s)" % (g.title, g.base, t, wins),
                             ylabel, [r for r in rows if r[1] == t and not r[0].single_threaded]
                             + single, time_series, by_thread=True) for t in counts]
        time_panels = time_panels or [
            Panel("%s: time relative to %s (%s)" % (g.title, g.base, wins), ylabel, single,
                  time_series)]
        time_panels[0].legend = True
        panels += time_panels
        panels.append(Panel("%s: peak RSS relative to %s (%s)" % (g.title, g.base, wins), ylabel,
                            rows, [(n, "maxrss_kib", n, g.base) for n in peers]))
    if pair:
        checked, default = pair
        panels.append(Panel(
            "the checked build's cost: %s / %s (above 1: the checked build is slower or "
            "bigger; dashed: the %.2f time target)" % (checked, default, CHECKED_COST_TARGET),
            "%s / %s" % (checked, default), rows,
            [(label, metric, checked, default) for metric, label in COST_METRICS],
            legend=True, target=CHECKED_COST_TARGET))
    return panels


def write_chart(path, rows, med, groups, pair):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    except ImportError as e:
        note("no chart: matplotlib is missing (%s); use /usr/bin/python3 from python3-matplotlib" % e)
        return False
    panels = chart_panels(rows, med, groups, pair)
    if not panels:
        note("no chart: it shows each class's peers relative to strata's build of the class, "
             "and there are none")
        return False
    most = max(len(p.rows) for p in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(10, 0.5 * most + 3), 3.3 * len(panels)),
                             squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, panel in zip(axes[:, 0], panels):
        prow, series = panel.rows, panel.series
        width = 0.8 / len(series)
        ratios_seen = [1.0]
        for i, (label, metric, num, den) in enumerate(series):
            xs, heights = [], []
            for j, (w, t) in enumerate(prow):
                b = med.get((w.name, t, den), {}).get(metric)
                v = med.get((w.name, t, num), {}).get(metric)
                if b and v:
                    xs.append(j + (i - (len(series) - 1) / 2) * width)
                    heights.append(v / b)
            ratios_seen += heights
            # Bars grow from 1: up where strata wins, down where the peer does.
            ax.bar(xs, [h - 1 for h in heights], bottom=1, width=width, label=label,
                   color=colors[i % len(colors)])
        if panel.target:
            ax.axhline(panel.target, color="black", linewidth=0.8, linestyle="--")
            ratios_seen.append(panel.target)
        ax.set_yscale("log")
        lo, hi = min(ratios_seen) / 1.15, max(ratios_seen) * 1.15
        ax.set_ylim(lo, hi)
        ticks = [v for v in NICE_TICKS if lo <= v <= hi and (hi / lo < 3 or v not in (0.8, 1.25))]
        if len(ticks) > 9:
            ticks = [2.0 ** k for k in range(-10, 11) if lo <= 2.0 ** k <= hi]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: "%g" % v))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_xticks(range(len(prow)))
        ax.set_xticklabels([w.name if panel.by_thread and not w.single_threaded
                            else "%s t=%d" % (w.name, t) for w, t in prow],
                           rotation=30, ha="right")
        ax.set_xlim(-0.6, len(prow) - 0.4)
        ax.set_ylabel(panel.ylabel)
        ax.set_title(panel.title, fontsize="medium")
        if panel.legend:
            ax.legend(ncol=len(series), loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# ---- Output files -----------------------------------------------------------

def ensure_dir(path, ignore_it):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    if ignore_it and not os.path.exists(os.path.join(d, ".gitignore")):
        # The default folder sits in the workspace: keep it out of git.
        with open(os.path.join(d, ".gitignore"), "w") as f:
            f.write("# Written by //tools:compare; results stay out of git.\n*\n")


def write_raw(results, csv_path, json_path, args, allocators):
    columns = ["rep", "workload", "threads", "allocator", "wall_s", "cpu_s", "user_s", "sys_s",
               "maxrss_kib", "other_cpus", "self_time_s", "suite_wall_s", "ops", "checksum"]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in results:
            writer.writerow(r)
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(), "cpus": os.cpu_count(), "kernel": platform.release(),
        "argv": sys.argv[1:], "repeats": args.repeats, "threads": args.thread_counts,
        "scale": args.scale, "seed": args.seed,
        "allocators": {n: p for n, p in allocators},
        "classes": {n: args.allocator_class[n] for n, _ in allocators},
        "checked_cost_target": CHECKED_COST_TARGET,
        "workloads": {w.name: {"binary": w.binary, "args": w.args,
                               "iterations": max(1, int(round(w.iterations * args.scale))),
                               "single_threaded": w.single_threaded}
                      for w in args.workload_list},
        "suite": ({"dir": args.suite_dir,
                   "rows": {w.name: {"program": w.binary, "args": w.args, "threads": w.threads,
                                     "metric": w.metric, "stdin": w.stdin}
                            for w in args.suite_list}}
                  if args.suite_list else None),
    }
    with open(json_path, "w") as f:
        json.dump({"meta": meta, "runs": results}, f, indent=1)
        f.write("\n")


def main(argv):
    args = parse_args(argv)
    if args.list:
        for w in WORKLOADS:
            print("%-13s %s" % (w.name, w.what))
        print()
        for name in args.allocator_order:
            path = args.allocator_paths[name]
            state = "no preload" if not path else (path if os.path.isfile(path) else path + " (missing)")
            print("%-16s %-8s %s" % (name, args.allocator_class[name], state))
        return 0

    out_dir = resolve_user_path(args.out_dir) if args.out_dir else default_out_dir()
    default_dir = args.out_dir is None

    def out_path(value, name):
        return (resolve_user_path(value), False) if value else (os.path.join(out_dir, name), default_dir)

    md_path, md_ignore = out_path(args.markdown, "compare.md")
    chart_path, chart_ignore = out_path(args.chart, "compare.png")
    csv_path, csv_ignore = out_path(args.csv, "compare.csv")
    json_path, json_ignore = out_path(args.json, "compare.json")

    allocators = available_allocators(args)
    if not allocators:
        note("no allocator left to run")
        return 2
    groups = class_groups(allocators, args.allocator_class)
    for g in groups:
        if g.base != g.anchor:
            note("%s is not among the allocators; the %s's ratios are relative to %s"
                 % (g.anchor, g.title, g.base))
    pair = cost_pair(allocators)
    for name, path in allocators:
        if os.path.basename(path).startswith("libstrata"):
            m = build_mode_note(path)
            if m:
                note("note: " + m)
    rows = plan_rows(args)
    for exe in {os.path.join(RUNFILES_ROOT, "tools", "bench", w.binary) for w, _ in rows
                if not w.suite} | {MEASURE}:
        if not os.access(exe, os.X_OK):
            note("workload binary %s is missing: run through `bazel run //tools:compare`" % exe)
            return 2

    start = time.perf_counter()
    results = []
    failure = None
    try:
        for name, path in allocators:
            if os.path.basename(path).startswith("libstrata"):
                check_strata_serves(path, args)
        run_comparison(args, allocators, rows, results)
    except Failure as e:
        failure = e
    except KeyboardInterrupt:
        note("interrupted")
        return 130
    elapsed = time.perf_counter() - start

    # Keep whatever ran, even after a failure, for the post-mortem.
    for path, ignore in ((csv_path, csv_ignore), (json_path, json_ignore)):
        ensure_dir(path, ignore)
    write_raw(results, csv_path, json_path, args, allocators)
    if failure is not None:
        note("FAILED: %s" % failure)
        note("the runs so far are in %s" % csv_path)
        return 1

    med = medians(results, args.keep_disturbed)
    chart_written = False
    if not args.no_chart:
        ensure_dir(chart_path, chart_ignore)
        chart_written = write_chart(chart_path, rows, med, groups, pair)
    lines = report(args, rows, med, allocators, groups, elapsed,
                   chart_path if chart_written and os.path.dirname(chart_path) ==
                   os.path.dirname(md_path) else None, results)
    ensure_dir(md_path, md_ignore)
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")

    print()
    for g in groups:
        print("==== %s" % g.heading())
        print()
        for metric in ("wall_s", "cpu_s", "maxrss_kib"):
            title, unit, _ = METRICS[metric]
            print("%s, %s (%s; in parentheses: peer / %s, above 1 means %s wins)"
                  % (title, g.title, unit, g.base, g.base))
            print("\n".join(table(metric, rows, med, g.members, g.base)))
            print()
        if len(g.members) < 2:
            print("(%s alone in the %s: no ratios to the best; --peers=DIR adds its peers)"
                  % (g.base, g.title))
            print()
            continue
        for metric in ("wall_s", "maxrss_kib"):
            print("%s, ratio to the best of the %s in each row (1.00 = best)"
                  % (METRICS[metric][0], g.title))
            print("\n".join(best_table(metric, rows, med, g.members)))
            print()
    cost = cost_text(rows, med, pair) if pair else None
    if cost:
        print(cost)
        print()
    busy = interference_text(results, med, args.keep_disturbed)
    if busy:
        print("machine:   " + busy)
    print("whole run: %.1f s (%d runs)" % (elapsed, len(results)))
    print("markdown:  %s" % md_path)
    if chart_written:
        print("chart:     %s" % chart_path)
    print("raw runs:  %s, %s" % (csv_path, json_path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
