#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""trace-plot.py - draw a libexecutor trace file as a Gantt chart (PNG).

usage: trace-plot.py TRACE.json OUT.png [--pid N] [--title TEXT] [--width INCHES]

TRACE.json is what exec_config_t.trace_path or EXEC_TRACE wrote: Trace Event JSON, a "["
line, then one event per line followed by a comma (a last line cut in mid-write is left
out). One row per track (a worker thread or process, or the executor's queue), with:

  - a bar per task or map chunk ("ph":"X"), coloured by its outcome (args.status); chunks
    hatched;
  - a thin grey line before a task from when it was submitted to when it started
    (args.queued_us), where that wait is visible at the scale of the picture;
  - a marker per instant ("ph":"i"): worker start, crash, deadline, killed, cancel,
    recycle.

--pid keeps one executor of a file that holds several. Needs matplotlib (Debian:
python3-matplotlib). The same file opens in ui.perfetto.dev and chrome://tracing.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

STATUS_COLOURS = {
    "EXEC_OK": "#4c72b0",
    "EXEC_ETASK": "#dd8452",
    "EXEC_ECRASHED": "#c44e52",
    "EXEC_ETIMEDOUT": "#8172b3",
    "EXEC_ECANCELLED": "#937860",
}
OTHER_COLOUR = "#7f7f7f"
INSTANTS = {  # name: (marker, colour, size, label)
    "worker start": (">", "#2ca02c", 40, "worker start"),
    "crash": ("X", "#c44e52", 110, "crash"),
    "deadline": ("|", "#111111", 260, "deadline"),
    "killed": ("x", "#111111", 60, "killed"),
    "cancel": ("x", "#937860", 60, "cancel"),
    "recycle": ("v", "#2ca02c", 70, "recycle"),
}


def load(path):
    """The events of a trace file, checking its shape as the viewers need it."""
    events = []
    with open(path, encoding="utf-8") as f:
        if f.readline().strip() != "[":
            sys.exit("%s: not a trace file (no \"[\" line)" % path)
        for n, line in enumerate(f, 2):
            if not line.endswith("\n"):
                break  # cut in mid-write: everything before it is whole
            line = line.strip()
            if line in ("", "]"):
                continue
            try:
                events.append(json.loads(line.rstrip(",")))
            except ValueError as e:
                sys.exit("%s:%d: %s" % (path, n, e))
    return events


def tracks(events):
    """The tracks with events, in order (by executor, then slot, then first event), their
    names, and the executors' names."""
    names, sort, first, procs = {}, {}, {}, {}
    for e in events:
        key = (e["pid"], e["tid"])
        if e["ph"] == "M":
            if e["name"] == "thread_name":
                names[key] = e["args"]["name"]
            elif e["name"] == "thread_sort_index":
                sort[key] = e["args"]["sort_index"]
            elif e["name"] == "process_name":
                procs[e["pid"]] = e["args"]["name"]
        else:
            first[key] = min(first.get(key, e["ts"]), e["ts"])
    used = sorted(first, key=lambda k: (k[0], sort.get(k, 0), first[k]))
    return used, names, procs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--pid", type=int, help="only this executor (the JSON pid)")
    ap.add_argument("--title", default=None)
    ap.add_argument("--width", type=float, default=12.0, help="inches (100 px each)")
    a = ap.parse_args()

    events = load(a.trace)
    if a.pid is not None:
        events = [e for e in events if e["pid"] == a.pid]
    timed = [e for e in events if e["ph"] != "M"]
    if not timed:
        sys.exit("%s: no spans or instants to draw" % a.trace)
    order, names, procs = tracks(events)
    row = {k: i for i, k in enumerate(order)}
    t0 = min(e["ts"] for e in timed)
    t1 = max(e["ts"] + e.get("dur", 0) for e in timed)
    ms = lambda us: (us - t0) / 1000.0  # noqa: E731
    visible_wait = (t1 - t0) / 400.0  # us: a wait shorter than this would not show

    fig, ax = plt.subplots(figsize=(a.width, 1.3 + 0.42 * len(order)), dpi=100)
    statuses, chunks = set(), False
    for e in timed:
        y = row[(e["pid"], e["tid"])]
        if e["ph"] == "X":
            st = e.get("args", {}).get("status", "")
            statuses.add(st)
            chunk = e["name"] == "map chunk"
            chunks |= chunk
            ax.barh(y, max(e["dur"], 0.0) / 1000.0, left=ms(e["ts"]), height=0.6,
                    color=STATUS_COLOURS.get(st, OTHER_COLOUR), edgecolor="white",
                    linewidth=0.4, hatch="///" if chunk else None)
            q = e.get("args", {}).get("queued_us", 0)
            if q > visible_wait:
                ax.plot([ms(e["ts"] - q), ms(e["ts"])], [y - 0.36, y - 0.36], color="0.55",
                        linewidth=1.0, solid_capstyle="butt")
                ax.plot([ms(e["ts"] - q)], [y - 0.36], marker="|", color="0.55",
                        markersize=5)
        elif e["ph"] == "i" and e["name"] in INSTANTS:
            m, c, s, _ = INSTANTS[e["name"]]
            ax.scatter([ms(e["ts"])], [y], marker=m, color=c, s=s, zorder=3,
                       linewidths=2 if m in "|x" else 1)

    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([names.get(k, "%d/%d" % k) for k in order], fontsize=9)
    ax.set_ylim(len(order) - 0.4, -0.6)
    ax.set_xlabel("ms since the first event")
    ax.grid(axis="x", color="0.9")
    ax.set_axisbelow(True)
    pids = sorted({k[0] for k in order})
    if len(pids) > 1:  # several executors: a line and a name above each one's tracks
        for pid in pids:
            top = min(row[k] for k in order if k[0] == pid)
            if top:
                ax.axhline(top - 0.5, color="0.6", linewidth=0.8)
            ax.text(1.0, top - 0.5, procs.get(pid, "executor %d" % pid) + " ",
                    transform=ax.get_yaxis_transform(), ha="right", va="top", fontsize=7,
                    color="0.35")
    title = a.title or (procs.get(pids[0]) if len(pids) == 1 else None)
    if title:
        ax.set_title(title, fontsize=11)

    legend = [Patch(color=STATUS_COLOURS.get(s, OTHER_COLOUR), label=s.replace("EXEC_", ""))
              for s in sorted(statuses, key=lambda s: list(STATUS_COLOURS).index(s)
                              if s in STATUS_COLOURS else 99)]
    if chunks:
        legend.append(Patch(facecolor="white", edgecolor="0.3", hatch="///", label="map chunk"))
    legend.append(Line2D([], [], color="0.55", linewidth=1.0, label="queued"))
    seen = {e["name"] for e in timed if e["ph"] == "i"}
    for name, (m, c, s, label) in INSTANTS.items():
        if name in seen:
            legend.append(Line2D([], [], linestyle="", marker=m, color=c, label=label,
                                 markersize=8 if m != "|" else 12))
    height = fig.get_figheight()
    fig.legend(handles=legend, loc="lower center", ncol=min(len(legend), 8), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1))  # room for the legend at the bottom
    fig.savefig(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
