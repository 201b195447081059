"""stats_viewer: draws a strata JSON statistics dump as a picture.

    stats_viewer DUMP.json [--out=MAP.png|.svg|.pdf] [--index=N] [--title=TEXT]

The picture has three parts:
  * the arena x pool occupancy map: one row per 256 KiB arena (sorted by
    heap, then address; empty arenas of the shared stack last), a header
    cell showing the arena's state, then its 62 pools of 4 KiB. A run is one
    cell (a multi-pool run one wide cell) coloured by its size class, filled
    from the bottom as far as its blocks are in use; free pools, purged pools
    and empty arenas are neutral. Thousands of arenas are wrapped into
    columns, and beyond what fits, each row summarises several arenas.
  * why each mapped byte is held (the dump's "retention" report);
  * bytes in use and free per size class.

The dump is what strata writes with STRATA_STATS_FORMAT=json-arenas (at exit
with STRATA_STATS_ON_EXIT=/abs/path), strata_stats_write(fd, "json-arenas")
or strata::WriteStats(fd, StatsFormat::kJsonArenas). A plain "json"
dump has no arena map: the side panels are drawn and the map says so. A file
holding several dumps (stats_on_exit appends) is read whole; the last dump
is drawn unless --index says otherwise.

Exit status: 0 when the picture is written, 2 for bad input or arguments.
Runs on Debian's /usr/bin/python3 (python3-matplotlib), through the
//tools/viz:stats_viewer launcher.
"""

import argparse
import json
import math
import os
import sys

FIRST_POOL = 2        # pools 0 and 1 are the arena's header (alloc/config.h kFirstUsablePool)
POOLS = 64 - FIRST_POOL  # usable pools per arena, listed in the JSON map
POOL_BYTES = 4096
ARENA_STATES = ("owned", "orphaned", "empty", "empty-purged")

# Neutral colours (RGB 0..1) of everything that is not a run.
WHITE = (1.0, 1.0, 1.0)
C_FREE = (0.69, 0.71, 0.74)          # free pool, resident (cool grey)
C_PURGED = (0.93, 0.94, 0.95)        # free pool, purged: pale grey, hatched
C_PURGED_HATCH = (0.70, 0.72, 0.75)
C_EMPTY = (0.82, 0.72, 0.55)         # empty arena, resident (sand)
C_EMPTY_PURGED = (0.96, 0.93, 0.87)  # empty arena, purged: pale sand, hatched
C_EMPTY_HATCH = (0.80, 0.70, 0.52)
C_OWNED = (0.27, 0.29, 0.33)         # header of an arena owned by a live thread's heap
C_ORPHANED = (0.90, 0.38, 0.0)       # header of an arena of an exited thread's heap
TINT = 0.72           # the free part of a run: its class colour, this much toward white
CMAP_TOP = 0.9        # viridis is used on [0, 0.9]: its last yellows are too pale to show a fill

MIB = 1 << 20


class InputError(Exception):
    """Bad input: the message is printed as is, after "stats_viewer: error: "."""


# ---- reading and checking a dump ---------------------------------------------


def _format_hint(text):
    if "# HELP strata_" in text or "# TYPE strata_" in text:
        return (" This is the Prometheus format; the viewer reads JSON: run with "
                "STRATA_STATS_FORMAT=json-arenas.")
    if "strata: statistics" in text or text.lstrip().startswith("#") or "class" in text[:200]:
        return (" This looks like the table format; the viewer reads JSON: run with "
                "STRATA_STATS_FORMAT=json-arenas.")
    return ""


def load_dumps(path):
    """Returns every JSON object in the file, in order (stats_on_exit appends)."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    if not text.strip():
        raise InputError(f"{path} is empty: no statistics dump in it (did the program exit "
                         "normally with STRATA_STATS_ON_EXIT set to an absolute path?)")
    decoder = json.JSONDecoder()
    dumps = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            break
        line = text.count("\n", 0, i) + 1
        if text[i] != "{":
            snippet = text[i:i + 50].split("\n", 1)[0]
            raise InputError(f"{path}:{line}: expected a JSON statistics dump, found "
                             f"{snippet!r}.{_format_hint(text)}")
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            truncated = ("; the file ends inside the dump (cut short?)"
                         if not text.rstrip().endswith("}") else "")
            raise InputError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}"
                             f"{truncated}") from None
        dumps.append((line, obj))
    return dumps


def _need(obj, key, kind, where):
    if not isinstance(obj, dict) or key not in obj:
        raise InputError(f"{where}: missing \"{key}\"")
    value = obj[key]
    ok = (isinstance(value, kind) and not isinstance(value, bool)) if kind is not bool else \
        isinstance(value, bool)
    if kind is int and ok and value < 0:
        ok = False
    if not ok:
        want = {int: "a count (integer >= 0)", str: "a string", list: "a list",
                dict: "an object", bool: "true or false"}[kind]
        raise InputError(f"{where}: \"{key}\" should be {want}, not {json.dumps(value)[:40]}")
    return value


RETENTION_KEYS = (
    "in_use", "in_use_large", "in_remote_transit", "free_in_empty_runs", "run_tails",
    "free_pools_cached", "free_pools_orphaned", "free_pools_purged", "empty_arenas_resident",
    "empty_arenas_purged", "arena_headers", "reserve_untouched", "large_overhead",
    "large_cached", "metadata")


def check_dump(d, where):
    """Checks the parts the picture uses; raises InputError naming the first problem."""
    if not isinstance(d, dict):
        raise InputError(f"{where}: a JSON {type(d).__name__}, not a strata statistics dump")
    wanted = ("version", "pid", "live_bytes", "classes", "retention", "arenas_summary", "os")
    missing = [k for k in wanted if k not in d]
    if missing:
        raise InputError(f"{where} is JSON but not a strata statistics dump: it has no "
                         f"{', '.join(missing)}")
    if d["version"] != 1:
        raise InputError(f"{where}: dump version {d['version']!r}; this viewer reads version 1")
    for key in ("pid", "live_bytes"):
        _need(d, key, int, where)
    classes = _need(d, "classes", list, where)
    if not classes:
        raise InputError(f"{where}: \"classes\" is empty")
    for i, c in enumerate(classes):
        w = f"{where}: classes[{i}]"
        for key in ("class", "size", "run_pools", "blocks_in_use", "blocks_free"):
            _need(c, key, int, w)
        if c["class"] != i + 1:
            raise InputError(f"{w}: \"class\" is {c['class']}, expected {i + 1} (classes in order)")
    r = _need(d, "retention", dict, where)
    for key in RETENTION_KEYS + ("total",):
        _need(r, key, int, f"{where}: retention")
    pinned = _need(r, "free_pinned", dict, f"{where}: retention")
    for key in pinned:
        _need(pinned, key, int, f"{where}: retention.free_pinned")
    for key in ("mapped", "owned", "empty"):
        _need(d["arenas_summary"], key, int, f"{where}: arenas_summary")
    for key in ("mapped_bytes", "resident_bytes"):
        _need(d["os"], key, int, f"{where}: os")
    if "arenas" in d:
        _need(d, "arenas", list, where)


class Run:
    """One run of an arena: pools [start, start + pools), one size class."""
    __slots__ = ("start", "pools", "cls", "used", "capacity")

    def __init__(self, start, pools, cls, used, capacity):
        self.start, self.pools, self.cls, self.used, self.capacity = start, pools, cls, used, capacity

    @property
    def fill(self):
        return self.used / self.capacity


class Arena:
    """One arena of the map: its state and, per pool, a Run, "f" or "p"."""
    __slots__ = ("base", "heap", "state", "pools", "runs")

    def __init__(self, base, heap, state):
        self.base, self.heap, self.state = base, heap, state
        self.pools = []   # POOLS entries: Run (each of its pools), "f" or "p"; empty for empty arenas
        self.runs = []


def parse_arenas(d, where):
    """Returns the dump's arenas as Arena objects, checking the map's structure."""
    num_classes = len(d["classes"])
    arenas = []
    for i, a in enumerate(d["arenas"]):
        w = f"{where}: arenas[{i}]"
        base_text = _need(a, "base", str, w)
        try:
            base = int(base_text, 16)
        except ValueError:
            raise InputError(f"{w}: \"base\" should be a hex address, not {base_text!r}") from None
        w = f"{where}: arena {base_text} (arenas[{i}])"
        heap = _need(a, "heap", int, w)
        state = _need(a, "state", str, w)
        if state not in ARENA_STATES:
            raise InputError(f"{w}: unknown state {state!r} (expected one of "
                             f"{', '.join(ARENA_STATES)})")
        pools = _need(a, "pools", list, w)
        arena = Arena(base, heap, state)
        if state.startswith("empty"):
            if pools:
                raise InputError(f"{w}: an {state} arena should list no pools")
            arenas.append(arena)
            continue
        if len(pools) != POOLS:
            raise InputError(f"{w}: {len(pools)} pools listed, expected {POOLS} (pools {FIRST_POOL}..63)")
        run = None
        tail_left = 0
        for p, entry in enumerate(pools):
            pw = f"{w}, pool {p + FIRST_POOL}"
            if tail_left:
                if entry != "t":
                    raise InputError(f"{pw}: expected \"t\" (pool {p + FIRST_POOL - run.pools + tail_left} "
                                     f"starts a run of {run.pools} pools), found "
                                     f"{json.dumps(entry)}")
                arena.pools.append(run)
                tail_left -= 1
                continue
            if entry in ("f", "p"):
                arena.pools.append(entry)
            elif entry == "t":
                raise InputError(f"{pw}: \"t\" (a later pool of a run) follows no run head")
            elif (isinstance(entry, list) and len(entry) == 5 and
                  all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in entry)):
                cls, _size, used, capacity, run_pools = entry
                if not 1 <= cls <= num_classes:
                    raise InputError(f"{pw}: size class {cls} is not in 1..{num_classes}")
                if capacity == 0 or used > capacity:
                    raise InputError(f"{pw}: {used} blocks used of a capacity of {capacity}")
                if run_pools < 1 or p + run_pools > POOLS:
                    raise InputError(f"{pw}: a run of {run_pools} pools does not fit the arena")
                run = Run(p + 1, run_pools, cls, used, capacity)
                arena.runs.append(run)
                arena.pools.append(run)
                tail_left = run_pools - 1
            else:
                raise InputError(f"{pw}: expected \"f\", \"p\", \"t\" or [class, block_size, "
                                 f"used, capacity, run_pools], found {json.dumps(entry)[:60]}")
        arenas.append(arena)
    # Owned and orphaned arenas by heap, then address; the shared stack's
    # empty arenas last (resident before purged).
    rank = {"owned": 0, "orphaned": 0, "empty": 1, "empty-purged": 2}
    arenas.sort(key=lambda a: (rank[a.state], a.heap, a.base))
    return arenas


# ---- formatting -------------------------------------------------------------


def human_bytes(n):
    if n >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    if n >= 10 * MIB:
        return f"{n / MIB:.0f} MiB"
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n} B"


def size_label(n):
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}K"
    return str(n)


def mix(c, toward, amount):
    return tuple(a + (b - a) * amount for a, b in zip(c, toward))


# ---- drawing in pixels -----------------------------------------------------------


class Canvas:
    """A figure laid out in pixels from its top-left corner (at 100 dpi, so
    the map's raster lands on whole pixels)."""

    DPI = 100

    def __init__(self, width, height):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        self.plt = plt
        self.w, self.h = width, height
        self.fig = plt.figure(figsize=(width / self.DPI, height / self.DPI), dpi=self.DPI)

    def axes(self, x, y, w, h, pixel_coords=False):
        """Axes over the pixel rectangle; with pixel_coords its data
        coordinates are pixels too (origin top-left)."""
        ax = self.fig.add_axes([x / self.w, 1 - (y + h) / self.h, w / self.w, h / self.h])
        if pixel_coords:
            ax.set_xlim(0, w)
            ax.set_ylim(h, 0)
            ax.set_axis_off()
        return ax

    def text(self, x, y, s, **kw):
        kw.setdefault("va", "top")
        self.fig.text(x / self.w, 1 - y / self.h, s, **kw)

    def save(self, out):
        self.fig.savefig(out, dpi=self.DPI)
        self.plt.close(self.fig)


# ---- the occupancy map -------------------------------------------------------


class Layout:
    """Pixel geometry of the map: rows of `row_h` px, pools `pool_w` px wide,
    wrapped into `columns` columns of `rows_per_column` rows; in summary mode
    each row stands for `per_row` arenas."""

    GUTTER = 84       # px left of each column for heap labels
    COLUMN_GAP = 14   # px between a column and the next column's gutter
    HEADER_GAP = 3    # px between the header cell and pool 2

    def __init__(self, rows, per_row, columns, row_h, pool_w):
        self.rows, self.per_row, self.columns = rows, per_row, columns
        self.rows_per_column = math.ceil(rows / columns) if rows else 0
        self.row_h, self.pool_w = row_h, pool_w
        self.row_gap = 1 if row_h >= 5 else 0
        self.cell_gap = 1 if pool_w >= 4 else 0

    @property
    def column_w(self):  # the raster of one column
        return (POOLS + 1) * self.pool_w + self.HEADER_GAP

    @property
    def width(self):
        return self.columns * (self.GUTTER + self.column_w) + (self.columns - 1) * self.COLUMN_GAP

    @property
    def height(self):
        return self.rows_per_column * self.row_h

    def pool_x(self, pool):  # pool 0 is the header
        return pool * self.pool_w + (self.HEADER_GAP if pool > 0 else 0)


def choose_layout(n, max_w, max_h):
    """The largest cells that fit n arenas in max_w x max_h px, wrapping into
    up to 6 columns; when even 4 px rows in 6 columns do not fit (about 1,900
    arenas), each row summarises several arenas, in 3 columns."""
    best = None
    for columns in range(1, 7):
        rows_per_column = math.ceil(n / columns)
        avail_w = max_w - columns * (Layout.GUTTER + Layout.HEADER_GAP) - (columns - 1) * Layout.COLUMN_GAP
        pool_w = min(14, avail_w // (columns * (POOLS + 1)))
        row_h = min(22, max_h // rows_per_column, pool_w * 2)
        if pool_w < 3 or row_h < 4:
            continue
        # Prefer big cells (up to a point), then few columns: each wrap costs
        # the eye a jump.
        score = min(pool_w, 9) * min(row_h, 10) - 4 * columns
        if best is None or score > best[0]:
            best = (score, Layout(n, 1, columns, row_h, pool_w))
    if best is not None:
        return best[1]
    # Summary rows: each is a sorted composition, so fewer, wider columns
    # read better than more arenas per row would cost.
    columns = 3
    avail_w = max_w - columns * (Layout.GUTTER + Layout.HEADER_GAP) - (columns - 1) * Layout.COLUMN_GAP
    pool_w = max(2, avail_w // (columns * (POOLS + 1)))
    row_h = 4
    per_row = math.ceil(n / (columns * (max_h // row_h)))
    return Layout(math.ceil(n / per_row), per_row, columns, row_h, pool_w)


def class_colors(num_classes):
    """colors[c]: the RGB of size class c (1..num_classes), small to large."""
    from matplotlib import colormaps
    cmap = colormaps["viridis"]
    return [None] + [tuple(cmap(CMAP_TOP * (c - 1) / max(1, num_classes - 1))[:3])
                     for c in range(1, num_classes + 1)]


def paint_cell(img, x0, x1, y0, y1, color, fill=None, hatch=None):
    """Paints [x0, x1) x [y0, y1). With a fill in 0..1, the bottom `fill` of
    the cell gets `color` and the rest its tint; the row cut by the fill line
    is blended, so small cells still show fractions. With a hatch colour,
    diagonal lines over `color` (memory given back to the OS)."""
    if x1 <= x0 or y1 <= y0:
        return
    if fill is None:
        img[y0:y1, x0:x1] = color
        if hatch is not None:
            ys, xs = _hatch_mask(img.shape)
            cell = img[y0:y1, x0:x1]
            cell[((ys[y0:y1, x0:x1] + xs[y0:y1, x0:x1]) % 4) == 0] = hatch
        return
    tint = mix(color, WHITE, TINT)
    h = y1 - y0
    filled = fill * h
    full = int(filled)
    img[y0:y1 - full, x0:x1] = tint
    if full:
        img[y1 - full:y1, x0:x1] = color
    part = filled - full
    if part > 0 and full < h:
        img[y1 - full - 1, x0:x1] = mix(tint, color, part)


_HATCH = {}


def _hatch_mask(shape):
    if shape[:2] not in _HATCH:
        import numpy as np
        _HATCH[shape[:2]] = np.indices(shape[:2])
    return _HATCH[shape[:2]]


NEUTRAL = {  # kind: (colour, hatch)
    "f": (C_FREE, None),
    "p": (C_PURGED, C_PURGED_HATCH),
    "empty": (C_EMPTY, None),
    "empty-purged": (C_EMPTY_PURGED, C_EMPTY_HATCH),
}


def header_color(state):
    return {"owned": C_OWNED, "orphaned": C_ORPHANED, "empty": C_EMPTY,
            "empty-purged": C_EMPTY_PURGED}[state]


def paint_arena_row(img, lay, y0, arena, colors):
    y1 = y0 + lay.row_h - lay.row_gap
    hx1 = lay.pool_x(1) - lay.HEADER_GAP - lay.cell_gap
    paint_cell(img, 0, max(hx1, 1), y0, y1, header_color(arena.state))
    if arena.state.startswith("empty"):
        color, hatch = NEUTRAL[arena.state]
        paint_cell(img, lay.pool_x(1), lay.pool_x(POOLS + 1) - lay.cell_gap, y0, y1, color,
                   hatch=hatch)
        return
    p = 0
    while p < POOLS:
        entry = arena.pools[p]
        x0 = lay.pool_x(p + 1)
        if isinstance(entry, Run):
            x1 = lay.pool_x(p + 1 + entry.pools) - lay.cell_gap
            paint_cell(img, x0, x1, y0, y1, colors[entry.cls], entry.fill)
            p += entry.pools
        else:
            x1 = lay.pool_x(p + 2) - lay.cell_gap
            color, hatch = NEUTRAL[entry]
            paint_cell(img, x0, x1, y0, y1, color, hatch=hatch)
            p += 1


def paint_summary_row(img, lay, y0, group, colors):
    """One row for several arenas: their pools sorted (runs by class, then
    free, purged, empty), resampled to the row's 62 cells, each painted by
    its most common kind (a run's class: the median; its fill: the mean)."""
    y1 = y0 + lay.row_h - lay.row_gap
    items = []  # (sort key, kind, class, fill)
    states = {}
    for a in group:
        states[a.state] = states.get(a.state, 0) + 1
        if a.state.startswith("empty"):
            items.extend([((3 if a.state == "empty" else 4, 0), a.state, 0, 0.0)] * POOLS)
            continue
        for e in a.pools:
            if isinstance(e, Run):
                items.append(((0, e.cls), "run", e.cls, e.fill))
            else:
                items.append(((1 if e == "f" else 2, 0), e, 0, 0.0))
    items.sort(key=lambda t: t[0])
    state = "orphaned" if states.get("orphaned") else max(states, key=states.get)
    hx1 = lay.pool_x(1) - lay.HEADER_GAP - lay.cell_gap
    paint_cell(img, 0, max(hx1, 1), y0, y1, header_color(state))
    per_cell = len(items) / POOLS
    for cell in range(POOLS):
        lo = int(cell * per_cell)
        chunk = items[lo:max(int((cell + 1) * per_cell), lo + 1)]
        kinds = {}
        for t in chunk:
            kinds[t[1]] = kinds.get(t[1], 0) + 1
        kind = max(kinds, key=kinds.get)
        x0, x1 = lay.pool_x(cell + 1), lay.pool_x(cell + 2)
        if kind == "run":
            runs = [t for t in chunk if t[1] == "run"]
            fill = sum(t[3] for t in runs) / len(runs)
            paint_cell(img, x0, x1, y0, y1, colors[runs[len(runs) // 2][2]], fill)
        else:
            color, hatch = NEUTRAL[kind]
            paint_cell(img, x0, x1, y0, y1, color, hatch=hatch)


def section_of(arena):
    """(key, label) of the map section the arena belongs to."""
    if arena.state == "empty":
        return "empty", "shared stack:\nempty arenas"
    if arena.state == "empty-purged":
        return "empty-purged", "shared stack:\npurged arenas"
    if arena.state == "orphaned":
        return f"h{arena.heap}", f"heap {arena.heap}\n(orphaned)"
    return f"h{arena.heap}", f"heap {arena.heap}"


def draw_map(cv, arenas, lay, x, y, colors):
    """Draws the wrapped map with its top-left corner at pixel (x, y)."""
    import numpy as np
    rows = ([[a] for a in arenas] if lay.per_row == 1 else
            [arenas[i:i + lay.per_row] for i in range(0, len(arenas), lay.per_row)])
    for col in range(lay.columns):
        first = col * lay.rows_per_column
        chunk = rows[first:first + lay.rows_per_column]
        if not chunk:
            break
        img = np.ones((lay.height, lay.column_w, 3))
        for r, group in enumerate(chunk):
            if lay.per_row == 1:
                paint_arena_row(img, lay, r * lay.row_h, group[0], colors)
            else:
                paint_summary_row(img, lay, r * lay.row_h, group, colors)
        cx = x + col * (lay.GUTTER + lay.column_w + lay.COLUMN_GAP) + lay.GUTTER
        ax = cv.axes(cx, y, lay.column_w, lay.height, pixel_coords=True)
        ax.imshow(img, interpolation="nearest", aspect="auto",
                  extent=(0, lay.column_w, lay.height, 0))
        # Heap boundaries: a rule across the column and a label in the
        # gutter (skipped when too close to the previous label).
        last_label_y = -100
        prev_key = section_of(rows[first - 1][-1])[0] if first > 0 else None
        for r, group in enumerate(chunk):
            key, label = section_of(group[0])
            if key != prev_key or r == 0:
                y0 = r * lay.row_h
                if r > 0:
                    ax.plot([-lay.GUTTER + 8, lay.column_w], [y0 - 0.5 * lay.row_gap] * 2,
                            color="#222222", lw=1.0, clip_on=False, solid_capstyle="butt")
                if y0 - last_label_y >= 24:
                    if r == 0 and key == prev_key:
                        label = label.split("\n")[0] + "\n(continued)"
                    color = "#b34700" if group[0].state == "orphaned" else "#222222"
                    ax.text(-8, y0 + 1, label, ha="right", va="top", fontsize=8, color=color,
                            linespacing=1.05, clip_on=False)
                    last_label_y = y0
            prev_key = section_of(group[-1])[0]


class Waffle:
    """The shared stack's empty arenas, which have no pools to show: one
    small square each (resident, then purged), wrapped to the map's width,
    so that hundreds of them do not crowd out the arenas that do."""

    MAX_H = 260      # px
    CAPTION_H = 18   # px above the squares for their caption

    def __init__(self, empties, width):
        self.empties = empties
        self.width = width
        n = len(empties)
        self.cell = 12
        while self.cell > 3 and self.lines(n) * self.cell > self.MAX_H:
            self.cell -= 1
        self.height = self.lines(n) * self.cell if n else 0

    def per_line(self):
        return max(1, self.width // self.cell)

    def lines(self, n):
        return math.ceil(n / self.per_line())


def draw_waffle(cv, waffle, x, y):
    import numpy as np
    c = waffle.cell
    per_line = waffle.per_line()
    lines = waffle.lines(len(waffle.empties))
    img = np.ones((lines * c, per_line * c, 3))
    gap = 1 if c >= 5 else 0
    for i, a in enumerate(waffle.empties):
        r, q = divmod(i, per_line)
        color, hatch = NEUTRAL[a.state]
        paint_cell(img, q * c, (q + 1) * c - gap, r * c, (r + 1) * c - gap, color, hatch=hatch)
    ax = cv.axes(x + Layout.GUTTER, y, per_line * c, lines * c, pixel_coords=True)
    ax.imshow(img, interpolation="nearest", aspect="auto", extent=(0, per_line * c, lines * c, 0))
    purged = sum(1 for a in waffle.empties if a.state == "empty-purged")
    n = len(waffle.empties)
    cv.text(x + Layout.GUTTER, y - Waffle.CAPTION_H + 2,
            f"shared stack: {n} empty arena{'s' if n != 1 else ''} ({n - purged} resident, "
            f"{purged} purged), one square each", fontsize=8.5, color="#333333")


KEY_ITEMS = (
    ("run, ¾ of its blocks in use", "run"),
    ("free pool, resident", "f"),
    ("free pool, purged", "p"),
    ("empty arena, resident", "empty"),
    ("empty arena, purged", "empty-purged"),
    ("header: live thread's heap", "owned"),
    ("header: exited thread's heap", "orphaned"),
)


def key_height(w):
    per_row = max(1, int(w // 250))
    return 60 + 20 * math.ceil(len(KEY_ITEMS) / per_row)


def draw_key(cv, x, y, w, d, colors, lay):
    """Below the map: the colour bar of the classes, swatches of the other
    colours and how to read a row."""
    from matplotlib.patches import Rectangle
    import numpy as np
    num_classes = len(d["classes"])
    bar_w = min(460, int(w * 0.6))
    cv.text(x, y, "run colour: its size class (block size, bytes)", fontsize=9)
    cax = cv.axes(x, y + 17, bar_w, 13)
    cax.imshow(np.array([colors[1:]]), aspect="auto", interpolation="nearest",
               extent=(0.5, num_classes + 0.5, 0, 1))
    ticks, labels = class_ticks(d, 1, num_classes, bar_w / num_classes)
    cax.set_xticks(ticks)
    cax.set_xticklabels(labels, fontsize=8)
    cax.tick_params(axis="x", length=2, pad=2)
    cax.set_yticks([])
    for s in cax.spines.values():
        s.set_visible(False)
    if lay is None or lay.per_row == 1:
        note = ("one row per 256 KiB arena: its header cell (pools 0-1), then pools 2-63 (4 KiB each);\n"
                "a run of several pools is one wide cell; an empty arena, one small square")
    else:
        note = (f"each row summarises {lay.per_row} arenas (too many for one row each): their\n"
                "pools sorted by class, then free, purged; an empty arena, one small square")
    cv.text(x + bar_w + 28, y, "how to read a row", fontsize=9)
    cv.text(x + bar_w + 28, y + 17, note, fontsize=8.5, color="#444444", linespacing=1.25)
    per_row = max(1, int(w // 250))
    rows = math.ceil(len(KEY_ITEMS) / per_row)
    top = y + 56
    kax = cv.axes(x, top, w, rows * 20, pixel_coords=True)
    col_w = w / per_row
    for i, (label, kind) in enumerate(KEY_ITEMS):
        ix, iy = (i % per_row) * col_w, (i // per_row) * 20 + 2
        swatch = np.ones((14, 14, 3))
        if kind == "run":
            paint_cell(swatch, 0, 14, 0, 14, colors[max(1, num_classes // 3)], 0.75)
        elif kind in NEUTRAL:
            paint_cell(swatch, 0, 14, 0, 14, NEUTRAL[kind][0], hatch=NEUTRAL[kind][1])
        else:
            paint_cell(swatch, 0, 14, 0, 14, header_color(kind))
        kax.imshow(swatch, extent=(ix, ix + 14, iy + 14, iy), interpolation="nearest")
        kax.add_patch(Rectangle((ix, iy), 14, 14, fill=False, edgecolor="#999999", lw=0.5))
        kax.text(ix + 20, iy + 7, label, fontsize=8.5, va="center")
    kax.set_xlim(0, w)
    kax.set_ylim(rows * 20, 0)


# ---- side panels --------------------------------------------------------------

# Why bytes are held, grouped: group label, palette, rows (label, keys).
RETENTION_GROUPS = (
    ("in use", ("#1b7837", "#5aae61", "#a6dba0"), (
        ("in use by the program", ("in_use",)),
        ("in use: large blocks", ("in_use_large",)),
        ("freed remotely, travelling home", ("in_remote_transit",)),
    )),
    ("free, resident", ("#b2182b", "#d6604d", "#f4a582", "#fdae61", "#fee090", "#e08214",
                        "#8c510a"), (
        ("free in runs pinned by live blocks", ("free_pinned",)),
        ("free in runs with no live block", ("free_in_empty_runs",)),
        ("free pools cached by live threads", ("free_pools_cached",)),
        ("free pools of exited threads", ("free_pools_orphaned",)),
        ("empty arenas, waiting for purge", ("empty_arenas_resident",)),
        ("large: cached for reuse", ("large_cached",)),
        ("run tails (rounding)", ("run_tails",)),
    )),
    ("overhead", ("#2166ac", "#6a9fd0", "#b7d2ec"), (
        ("arena headers (metadata)", ("arena_headers",)),
        ("large: header and rounding", ("large_overhead",)),
        ("strata metadata", ("metadata",)),
    )),
    ("not resident", ("#9e9e9e", "#c4c4c4", "#e6e6e6", "#7b7b7b"), (
        ("free pools, purged", ("free_pools_purged",)),
        ("empty arenas, purged", ("empty_arenas_purged",)),
        ("reserved, never touched", ("reserve_untouched",)),
        # Guarded sampling's region: guard pages and slots, inaccessible but
        # for its live blocks' pages (dumps before it have no such row).
        ("guarded slots and guard pages", ("guarded",)),
    )),
)


def retention_rows(r):
    """[(group, label, bytes, colour)] for every reason holding bytes."""
    out = []
    for group, palette, rows in RETENTION_GROUPS:
        for i, (label, keys) in enumerate(rows):
            total = 0
            for k in keys:
                v = r.get(k, 0)
                total += sum(v.values()) if isinstance(v, dict) else v
            if total:
                out.append((group, label, total, palette[i % len(palette)]))
    return out


def retention_height(d):
    rows = retention_rows(d["retention"])
    return 96 + 19 * (len(rows) + len({g for g, _, _, _ in rows}))


def draw_retention(cv, x, y, w, d):
    """The retention report: a 100% stacked bar, then a table. Returns the height used."""
    from matplotlib.patches import Rectangle
    rows = retention_rows(d["retention"])
    total = sum(b for _, _, b, _ in rows)
    h = retention_height(d)
    ax = cv.axes(x, y, w, h, pixel_coords=True)
    ax.text(0, 0, "Why each mapped byte is held", fontsize=11, fontweight="bold", va="top")
    if total == 0:
        ax.text(0, 40, "nothing mapped", fontsize=9, color="#555555", va="top")
        return h
    bar_y, bar_h = 44, 26
    px = 0.0
    spans = {}
    for group, _label, b, color in rows:
        bw = w * b / total
        ax.add_patch(Rectangle((px, bar_y), bw, bar_h, facecolor=color, edgecolor="white",
                               lw=0.5))
        lo, _ = spans.get(group, (px, px))
        spans[group] = (lo, px + bw)
        px += bw
    for group, (lo, hi) in spans.items():
        if hi - lo < 12:
            continue
        ax.plot([lo + 1.5, lo + 1.5, hi - 1.5, hi - 1.5],
                [bar_y - 3, bar_y - 8, bar_y - 8, bar_y - 3], color="#666666", lw=0.8)
        if hi - lo > 8 * len(group):
            ax.text((lo + hi) / 2, bar_y - 10, group, ha="center", va="bottom", fontsize=8,
                    color="#333333")
    ty = bar_y + bar_h + 20
    col_bytes, col_share = w - 58, w
    for group, _palette, _rows in RETENTION_GROUPS:
        mine = [row for row in rows if row[0] == group]
        if not mine:
            continue
        sub = sum(b for _, _, b, _ in mine)
        for xx, s, ha in ((0, group, "left"), (col_bytes, human_bytes(sub), "right"),
                          (col_share, f"{100 * sub / total:.1f}%", "right")):
            ax.text(xx, ty, s, fontsize=9, fontweight="bold", va="center", ha=ha)
        ty += 19
        for _g, label, b, color in mine:
            ax.add_patch(Rectangle((10, ty - 6), 16, 12, facecolor=color, edgecolor="#888888",
                                   lw=0.4))
            ax.text(34, ty, label, fontsize=8.5, va="center")
            ax.text(col_bytes, ty, human_bytes(b), fontsize=8.5, va="center", ha="right")
            ax.text(col_share, ty, f"{100 * b / total:.1f}%", fontsize=8.5, va="center",
                    ha="right", color="#555555")
            ty += 19
    return h


def class_ticks(d, lo, hi, px_per_class):
    """Class indices in [lo, hi] whose block size is a power of two, at
    least ~30 px apart."""
    ticks, labels = [], []
    last = -1e9
    for c in d["classes"]:
        size = c["size"]
        if lo <= c["class"] <= hi and size & (size - 1) == 0:
            if (c["class"] - last) * px_per_class >= 30:
                ticks.append(c["class"])
                labels.append(size_label(size))
                last = c["class"]
    return ticks, labels


def draw_classes(cv, x, y, w, h, d, colors):
    """Bytes in use (full colour) and free in live runs (tint) per class."""
    from matplotlib.patches import Patch
    cv.text(x, y, "Bytes per size class", fontsize=11, fontweight="bold")
    ax = cv.axes(x + 52, y + 48, w - 52, h - 92)
    classes = d["classes"]
    active = [c for c in classes if c["blocks_in_use"] or c["blocks_free"]]
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not active:
        ax.text(0.5, 0.5, "no runs in use", ha="center", va="center", transform=ax.transAxes,
                color="#555555")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    lo = max(1, min(c["class"] for c in active) - 1)
    hi = min(len(classes), max(c["class"] for c in active) + 1)
    xs = [c["class"] for c in active]
    top_bytes = max((c["blocks_in_use"] + c["blocks_free"]) * c["size"] for c in active)
    unit, unit_name = (MIB, "MiB") if top_bytes >= MIB else (1024, "KiB")
    used = [c["blocks_in_use"] * c["size"] / unit for c in active]
    free = [c["blocks_free"] * c["size"] / unit for c in active]
    cols = [colors[c["class"]] for c in active]
    ax.bar(xs, used, width=0.86, color=cols)
    ax.bar(xs, free, width=0.86, bottom=used, color=[mix(c, WHITE, TINT) for c in cols],
           edgecolor=cols, linewidth=0.4)
    ax.set_xlim(lo - 0.6, hi + 0.6)
    ticks, labels = class_ticks(d, lo, hi, (w - 52) / max(1, hi - lo + 1))
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_xlabel("size class (block size, bytes)", fontsize=9)
    ax.set_ylabel(unit_name, fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", color="#e8e8e8", lw=0.6)
    ax.set_axisbelow(True)
    grey = (0.35, 0.35, 0.35)
    handles = [Patch(facecolor=grey, label="in use"),
               Patch(facecolor=mix(grey, WHITE, TINT), edgecolor=grey, lw=0.4,
                     label="free in the class's runs")]
    ax.legend(handles=handles, fontsize=8.5, frameon=False, loc="lower left",
              bbox_to_anchor=(0, 1.0), ncol=2, borderaxespad=0.3, handlelength=1.4)
    large = d.get("large") or {}
    if large.get("blocks"):
        cv.text(x + w, y + 4, f"not shown: {large['blocks']} large blocks (> 64 KiB), "
                f"{human_bytes(large.get('bytes', 0))}", fontsize=8, ha="right", color="#555555")


# ---- the figure ---------------------------------------------------------------

MAP_MAX_W, MAP_MAX_H = 1500, 1250   # px: the map's cap; the figure is at most ~2200 x 1600
SIDE_W = 560
MARGIN, TITLE_H = 24, 104


def render(d, out, title=None, source="dump"):
    """Draws dump d into the file `out` (format from its extension). Returns
    the map's Layout (None without a map)."""
    colors = class_colors(len(d["classes"]))
    arenas = parse_arenas(d, source) if "arenas" in d else None
    waffle = None
    if arenas:
        owned = [a for a in arenas if not a.state.startswith("empty")]
        empties = [a for a in arenas if a.state.startswith("empty")]
        # The waffle's height depends on the map's width: size it for the
        # narrowest map first, then for the map chosen.
        reserve = (Waffle(empties, 800 - Layout.GUTTER).height + Waffle.CAPTION_H + 8
                   if empties else 0)
        lay = choose_layout(len(owned), MAP_MAX_W, MAP_MAX_H - reserve) if owned else None
        map_w = max(lay.width if lay else 0, 800)
        map_h = lay.height if lay else 0
        if empties:
            waffle = Waffle(empties, map_w - Layout.GUTTER)
            map_h += (8 if lay else 0) + Waffle.CAPTION_H + waffle.height
    else:
        lay = None
        map_w, map_h = 800, 420
    key_h = key_height(map_w - Layout.GUTTER)
    ret_h = retention_height(d)
    side_h = ret_h + 36 + 380
    body_h = max(map_h + 30 + key_h, side_h)
    cv = Canvas(MARGIN + map_w + 48 + SIDE_W + MARGIN, TITLE_H + body_h + MARGIN)

    summary, os_info = d["arenas_summary"], d["os"]
    heaps = d.get("heaps") or {}
    head = title or f"strata heap of pid {d['pid']}"
    cv.text(MARGIN, 16, f"{head}:  {human_bytes(d['live_bytes'])} live,  "
            f"{human_bytes(os_info['mapped_bytes'])} mapped from the OS",
            fontsize=15, fontweight="bold")
    facts = [f"{summary['mapped']} arenas ({summary['owned']} owned by heaps, "
             f"{summary['empty']} empty)"]
    if heaps:
        facts.append(f"{heaps.get('active', 0)} live thread heaps, "
                     f"{heaps.get('orphaned', 0)} orphaned")
    facts.append(f"process RSS {human_bytes(os_info['resident_bytes'])}")
    cv.text(MARGIN, 46, "  ·  ".join(facts), fontsize=10, color="#333333")

    top = TITLE_H
    if arenas:
        what = "Arena × pool occupancy"
        if lay is not None and lay.per_row > 1:
            what += f"  (each row: {lay.per_row} arenas)"
        cv.text(MARGIN, top - 6, what, fontsize=11, fontweight="bold", va="bottom")
        if lay is not None:
            draw_map(cv, owned, lay, MARGIN, top, colors)
        if waffle is not None:
            draw_waffle(cv, waffle, MARGIN, top + map_h - waffle.height)
        draw_key(cv, MARGIN + Layout.GUTTER, top + map_h + 24, map_w - Layout.GUTTER, d,
                 colors, lay)
    else:
        cv.text(MARGIN, top - 6, "Arena × pool occupancy", fontsize=11, fontweight="bold",
                va="bottom")
        ax = cv.axes(MARGIN, top, map_w, map_h)
        ax.set_xticks([])
        ax.set_yticks([])
        for s in ax.spines.values():
            s.set_color("#bbbbbb")
        msg = ("This dump has no arena map (it was written in the plain \"json\" format).\n\n"
               "For the map, dump with STRATA_STATS_FORMAT=json-arenas,\n"
               "strata_stats_write(fd, \"json-arenas\") or\n"
               "strata::WriteStats(fd, StatsFormat::kJsonArenas)."
               if arenas is None else "No arenas are mapped: nothing to draw.")
        ax.text(0.5, 0.5, msg, ha="center", va="center", fontsize=11, color="#444444",
                transform=ax.transAxes, linespacing=1.4)

    sx = MARGIN + map_w + 48
    draw_retention(cv, sx, top - 22, SIDE_W, d)
    draw_classes(cv, sx, top - 22 + ret_h + 36, SIDE_W, min(560, body_h - ret_h - 36 + 22), d,
                 colors)
    cv.save(out)
    return lay


def main(argv):
    parser = argparse.ArgumentParser(
        prog="stats_viewer",
        description="Draws a strata JSON statistics dump (STRATA_STATS_FORMAT=json-arenas): "
                    "the arena x pool occupancy map, why each mapped byte is held, and bytes "
                    "per size class.")
    parser.add_argument("dump", help="the JSON dump ('-' for stdin)")
    parser.add_argument("--out", help="picture to write: .png, .svg or .pdf "
                        "(default: the dump's name with .png)")
    parser.add_argument("--index", type=int, default=-1,
                        help="which dump of a file holding several (0 = first; default: last)")
    parser.add_argument("--title", help="title instead of 'strata heap of pid N'")
    args = parser.parse_args(argv)

    out = args.out
    if out is None:
        if args.dump == "-":
            parser.error("--out is required when the dump comes from stdin")
        out = os.path.splitext(args.dump)[0] + ".png"
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".png", ".svg", ".pdf"):
        parser.error(f"--out={out}: the name should end in .png, .svg or .pdf")

    try:
        dumps = load_dumps(args.dump)
        if not -len(dumps) <= args.index < len(dumps):
            raise InputError(f"{args.dump} holds {len(dumps)} dump(s); --index={args.index} "
                             "is out of range")
        line, d = dumps[args.index]
        where = args.dump if len(dumps) == 1 else f"{args.dump} (dump at line {line})"
        check_dump(d, where)
        if len(dumps) > 1:
            print(f"stats_viewer: {args.dump} holds {len(dumps)} dumps; drawing the one at line "
                  f"{line} (pid {d['pid']}); --index chooses another", file=sys.stderr)
        if "arenas" not in d:
            print(f"stats_viewer: note: {where} has no arena map (plain \"json\" format); "
                  "drawing the other panels. Dump with STRATA_STATS_FORMAT=json-arenas for the "
                  "map.", file=sys.stderr)
        lay = render(d, out, args.title, where)
    except InputError as e:
        print(f"stats_viewer: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"stats_viewer: error: cannot write {out}: {e.strerror}", file=sys.stderr)
        return 2
    if "arenas" not in d:
        what = "no arena map"
    else:
        what = f"{len(d['arenas'])} arenas"
        if lay is not None:
            what += (f", {lay.columns} column(s)" if lay.per_row == 1 else
                     f", {lay.per_row} arenas per row in {lay.columns} columns")
    print(f"stats_viewer: wrote {out} ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
