"""plot_timeline: draws strata's sampled memory over time.

    plot_timeline SAMPLES.jsonl [MORE.jsonl ...] [--out=TIMELINE.png|.svg|.pdf]
                  [--label=NAME ...] [--title=TEXT] [--own_scales]

Each input is what strata's sampler writes with STRATA_SAMPLE_INTERVAL_MS=N
and STRATA_SAMPLE_FILE=/abs/path.jsonl: one JSON object a line,
    {"t_ms", "rss_bytes", "live_bytes", "mapped_bytes", "free_resident_bytes",
     "released_bytes"}
(record_timeline.sh runs a command that way and calls this). Each input gets
a panel, all on the same scales (unless --own_scales): the process's RSS, the bytes mapped from the
OS, the live bytes and the free bytes strata keeps resident, in MiB against
seconds, with the peak RSS marked and every curve's final value named.

The sampler appends, so a file may hold several processes' runs (a program
run twice, or a program and its children, which inherit the preload): when
the time goes backwards a new run starts, and each run gets its own panel
(runs that overlap in time are interleaved beyond repair; the warning says
so).

Exit status: 0 when the picture is written, 2 for bad input or arguments.
Runs on Debian's /usr/bin/python3 (python3-matplotlib), through the
//tools/viz:plot_timeline launcher.
"""

import argparse
import json
import os
import sys

MIB = 1 << 20
REQUIRED = ("t_ms", "rss_bytes", "live_bytes", "mapped_bytes")
OPTIONAL = ("free_resident_bytes", "released_bytes")
MAX_PANELS = 8

# (key, legend label, colour, line width, z-order)
SERIES = (
    ("rss_bytes", "RSS (whole process)", "#222222", 2.0, 5),
    ("mapped_bytes", "mapped by strata", "#3b6fb6", 1.6, 4),
    ("live_bytes", "live (in use)", "#1b9e55", 1.6, 4),
    ("free_resident_bytes", "free, still resident", "#e0711c", 1.4, 3),
)


class InputError(Exception):
    """Bad input: printed after "plot_timeline: error: "."""


def human_bytes(n):
    if n >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    if n >= 100 * MIB:
        return f"{n / MIB:.0f} MiB"
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n} B"


def read_samples(path):
    """Returns the file's runs: lists of sample dicts, each run's time rising."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    samples = []
    last = max((i for i, l in enumerate(lines) if l.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        where = f"{path}:{i + 1}"
        try:
            s = json.loads(line)
        except json.JSONDecodeError as e:
            if i == last and samples:
                print(f"plot_timeline: warning: {where}: the last line is cut short (the process "
                      "was killed while writing?); left out", file=sys.stderr)
                continue
            hint = ""
            if line.lstrip().startswith("{\"version\""):
                hint = (" (this is a statistics dump: draw it with stats_viewer; samples come "
                        "from STRATA_SAMPLE_INTERVAL_MS and STRATA_SAMPLE_FILE)")
            raise InputError(f"{where}: not a JSON sample line: {e.msg}{hint}") from None
        if not isinstance(s, dict):
            raise InputError(f"{where}: expected a JSON object, found {line.strip()[:40]}")
        if "version" in s and "t_ms" not in s:
            raise InputError(f"{where}: this is a statistics dump, not a sample line: draw it "
                             "with stats_viewer; samples come from STRATA_SAMPLE_INTERVAL_MS and "
                             "STRATA_SAMPLE_FILE")
        missing = [k for k in REQUIRED if k not in s]
        if missing:
            raise InputError(f"{where}: sample has no {', '.join(missing)}")
        for k in REQUIRED + OPTIONAL:
            if k in s and (not isinstance(s[k], int) or isinstance(s[k], bool) or s[k] < 0):
                raise InputError(f"{where}: \"{k}\" should be an integer >= 0, not "
                                 f"{json.dumps(s[k])[:30]}")
        samples.append(s)
    if not samples:
        raise InputError(f"{path} holds no samples. The sampler writes one line every "
                         "STRATA_SAMPLE_INTERVAL_MS (it must be > 0) once the program has freed "
                         "memory; a program that ends within one interval leaves none: "
                         "try a shorter interval")
    runs = [[samples[0]]]
    for s in samples[1:]:
        if s["t_ms"] < runs[-1][-1]["t_ms"]:
            runs.append([])
        runs[-1].append(s)
    return runs


def split_label(label, index, count):
    return label if count == 1 else f"{label} (run {index + 1} of {count})"


def place_labels(ys, min_gap, lo, hi):
    """Spreads the display y positions ys (any order) at least min_gap apart
    within [lo, hi], moving each as little as it can. Returns them in the
    same order."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed = [ys[i] for i in order]
    if not placed:
        return []
    placed[0] = max(placed[0], lo)
    for k in range(1, len(placed)):
        placed[k] = max(placed[k], placed[k - 1] + min_gap)
    if placed[-1] > hi:
        placed[-1] = hi
        for k in range(len(placed) - 2, -1, -1):
            placed[k] = min(placed[k], placed[k + 1] - min_gap)
    out = [0.0] * len(ys)
    for k, i in enumerate(order):
        out[i] = placed[k]
    return out


def plot(runs, out, title, own_scales=False):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(runs)
    panel_h = 3.4 if n == 1 else max(2.2, 3.0 - 0.1 * n)
    # Inches above each panel for its name and facts (and, with own scales,
    # the x tick labels of the panel above).
    gap = 0.62 + (0.28 if own_scales and n > 1 else 0)
    head = 0.85 + 0.62  # title, legend, the first panel's name and facts
    fig_h = head + panel_h * n + gap * (n - 1) + 0.55
    fig, axes = plt.subplots(n, 1, figsize=(12, fig_h), dpi=100, sharex=not own_scales,
                             sharey=not own_scales, squeeze=False)
    axes = [a[0] for a in axes]
    fig.subplots_adjust(left=0.075, right=0.81, top=1 - head / fig_h,
                        bottom=0.55 / fig_h, hspace=gap / panel_h if n > 1 else 0)
    fig.text(0.075, 1 - 0.18 / fig_h, title, fontsize=14, fontweight="bold", va="top")

    def top(run):
        return max(s[k] for s in run for k in REQUIRED[1:]) / MIB

    ymax = max(top(run) for _, run in runs)
    xmax = max(run[-1]["t_ms"] for _, run in runs) / 1000
    for ax, (label, run) in zip(axes, runs):
        if own_scales:
            ymax, xmax = top(run), run[-1]["t_ms"] / 1000
        t = [s["t_ms"] / 1000 for s in run]
        for key, name, color, lw, z in SERIES:
            if key not in run[0]:
                continue
            ys = [s.get(key, 0) / MIB for s in run]
            ax.plot(t, ys, color=color, lw=lw, label=name, zorder=z, solid_joinstyle="round")
            if key == "live_bytes":
                ax.fill_between(t, ys, color=color, alpha=0.10, lw=0, zorder=1)
        ax.set_xlim(0, max(xmax * 1.01, 0.001))
        ax.set_ylim(0, max(ymax * 1.12, 1))
        ax.grid(color="#e6e6e6", lw=0.7)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(labelsize=9)
        ax.set_ylabel("MiB", fontsize=10)

        # The peak RSS, marked on the curve.
        peak = max(run, key=lambda s: s["rss_bytes"])
        pt, pv = peak["t_ms"] / 1000, peak["rss_bytes"] / MIB
        ax.plot([pt], [pv], "o", ms=7, mfc="white", mec="#222222", mew=1.6, zorder=6)
        right_half = pt > 0.6 * xmax
        ax.annotate(f"peak RSS {human_bytes(peak['rss_bytes'])} at {pt:.2f} s", (pt, pv),
                    xytext=(-10 if right_half else 10, 7), textcoords="offset points",
                    ha="right" if right_half else "left", va="bottom", fontsize=9,
                    fontweight="bold", zorder=7,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.8))
        live_peak = max(s["live_bytes"] for s in run)
        released = run[-1].get("released_bytes")
        interval = (run[-1]["t_ms"] - run[0]["t_ms"]) / max(1, len(run) - 1)
        facts = [f"peak live {human_bytes(live_peak)}"]
        if released is not None:
            facts.append(f"{human_bytes(released)} given back to the OS")
        facts.append(f"{len(run)} samples, ~{interval:.0f} ms apart")
        ax.annotate(label, xy=(0, 1), xycoords="axes fraction", xytext=(0, 22),
                    textcoords="offset points", fontsize=10.5, fontweight="bold", va="bottom")
        ax.annotate("  ·  ".join(facts), xy=(0, 1), xycoords="axes fraction", xytext=(0, 8),
                    textcoords="offset points", fontsize=9, color="#444444", va="bottom")

    # Final values, named at the right of each panel, spread so they never
    # overlap; a thin leader joins each to its curve's end.
    fig.canvas.draw()
    for ax, (label, run) in zip(axes, runs):
        end = run[-1]
        te = end["t_ms"] / 1000
        entries = [(key, name, color) for key, name, color, _, _ in SERIES if key in end]
        disp = [ax.transData.transform((te, end[key] / MIB))[1] for key, _, _ in entries]
        bbox = ax.get_window_extent()
        ys = place_labels(disp, 15, bbox.y0 + 6, bbox.y1 - 6)
        x_text = bbox.x1 + 16
        ax.annotate(f"at the end ({te:.2f} s):", xy=(x_text, max(ys) + 17),
                    xycoords="figure pixels", fontsize=8, color="#666666", va="center",
                    annotation_clip=False)
        for (key, name, color), y_text in zip(entries, ys):
            short = name.split(" (")[0].split(",")[0]
            ax.annotate(f"{short}: {human_bytes(end[key])}",
                        xy=(te, end[key] / MIB), xycoords="data",
                        xytext=(x_text, y_text), textcoords="figure pixels",
                        fontsize=9, color=color, va="center", ha="left",
                        fontweight="bold" if key == "rss_bytes" else "normal",
                        annotation_clip=False,
                        arrowprops=dict(arrowstyle="-", color=color, lw=0.6, alpha=0.7,
                                        shrinkA=0, shrinkB=2))
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper left", bbox_to_anchor=(0.07, 1 - 0.42 / fig_h),
               ncol=len(names), fontsize=9.5, frameon=False, handlelength=2.2,
               columnspacing=2.0)
    axes[-1].set_xlabel("seconds since sampling began (strata's first free)", fontsize=10)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv):
    parser = argparse.ArgumentParser(
        prog="plot_timeline",
        description="Plots strata's sampled memory (STRATA_SAMPLE_FILE .jsonl files) over time: "
                    "RSS, mapped, live and resident free bytes, one panel per run.")
    parser.add_argument("samples", nargs="+", help="sample files (.jsonl)")
    parser.add_argument("--out", help="picture to write: .png, .svg or .pdf "
                        "(default: the first file's name with .png)")
    parser.add_argument("--label", action="append",
                        help="a panel's name; once per file, in order (default: the file names)")
    parser.add_argument("--title", default="Memory over time", help="the picture's title")
    parser.add_argument("--own_scales", action="store_true",
                        help="give each panel its own scales (default: all share them, to compare)")
    args = parser.parse_args(argv)
    out = args.out or os.path.splitext(args.samples[0])[0] + ".png"
    if os.path.splitext(out)[1].lower() not in (".png", ".svg", ".pdf"):
        parser.error(f"--out={out}: the name should end in .png, .svg or .pdf")
    labels = args.label or [os.path.basename(p) for p in args.samples]
    if len(labels) != len(args.samples):
        parser.error(f"{len(labels)} --label for {len(args.samples)} files: give one per file")
    try:
        runs = []
        for path, label in zip(args.samples, labels):
            file_runs = read_samples(path)
            if len(file_runs) > 1:
                print(f"plot_timeline: warning: {path} holds {len(file_runs)} runs (the time "
                      "goes backwards: several processes appended to it, e.g. children that "
                      "inherited the preload); each gets a panel. Runs that overlapped in time "
                      "are mixed beyond repair: sample one process per file", file=sys.stderr)
            runs.extend((split_label(label, i, len(file_runs)), r)
                        for i, r in enumerate(file_runs))
        if len(runs) > MAX_PANELS:
            print(f"plot_timeline: warning: {len(runs)} runs; drawing the {MAX_PANELS} with "
                  "the most samples", file=sys.stderr)
            keep = sorted(range(len(runs)), key=lambda i: -len(runs[i][1]))[:MAX_PANELS]
            runs = [runs[i] for i in sorted(keep)]
        plot(runs, out, args.title, args.own_scales)
    except InputError as e:
        print(f"plot_timeline: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"plot_timeline: error: cannot write {out}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"plot_timeline: wrote {out} ({len(runs)} run(s), "
          f"{sum(len(r) for _, r in runs)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
