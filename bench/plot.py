#!/usr/bin/env python3
"""Bar charts for a bench JSON (bench/same-host.sh): one panel per metric,
one bar per setup, median with the individual runs as dots. A JSON with
"columns" (bench/rdma-sockets.sh) gets its panels in rows of that many,
and no bar for a setup that did not measure the metric."""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NAMES = {"host": "loopback", "bridge": "container bridge", "ffnet": "ffnet", "ffexec": "ffexec",
         "native": "native rxe", "host2host": "host to host", "nat": "bridge + NAT",
         "ffnet_rdma": "ffnet RDMA", "ffnet_tcp": "ffnet TCP", "rsocket": "rsocket"}
COLORS = {"host": "#888888", "bridge": "#d08030", "ffnet": "#2a7ab0", "ffexec": "#40a060",
          "native": "#888888", "host2host": "#888888", "nat": "#d08030",
          "ffnet_rdma": "#2a7ab0", "ffnet_tcp": "#7fb3d5", "rsocket": "#d08030"}


def grid(data, dst):
    metrics = {k: m for k, m in data["metrics"].items() if any(isinstance(m[s], dict) for s in m)}
    cols = min(data["columns"], len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    for ax, (key, m) in zip(axes.flat, metrics.items()):
        setups = [s for s in m if isinstance(m[s], dict)]
        xs = range(len(setups))
        ax.bar(xs, [m[s]["median"] for s in setups], color=[COLORS.get(s, "#555") for s in setups])
        for x, s in zip(xs, setups):
            ax.plot([x] * len(m[s]["runs"]), m[s]["runs"], "k.", markersize=4)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([NAMES.get(s, s) for s in setups], rotation=30, ha="right", fontsize=8)
        ax.set_title(m["label"] + ("\n(lower is better)" if m.get("lower_is_better") else ""), fontsize=9)
    fig.suptitle("median of %d runs (%s)" % (data["runs"], data.get("backend", "")), fontsize=9)
    fig.tight_layout()
    fig.savefig(dst, dpi=100)


def main(src, dst):
    data = json.load(open(src))
    if "columns" in data:
        grid(data, dst)
        return
    metrics = data["metrics"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6))
    for ax, (key, m) in zip(axes, metrics.items()):
        setups = [s for s in m if isinstance(m[s], dict)]
        xs = range(len(setups))
        ax.bar(xs, [m[s]["median"] for s in setups], color=[COLORS.get(s, "#555") for s in setups])
        for x, s in zip(xs, setups):
            ax.plot([x] * len(m[s]["runs"]), m[s]["runs"], "k.", markersize=4)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([NAMES.get(s, s) for s in setups], rotation=30, ha="right", fontsize=8)
        ax.set_title(m["label"] + ("\n(lower is better)" if m.get("lower_is_better") else ""),
                     fontsize=9)
    fig.suptitle("median of %d runs of %ss (%s)" % (data["runs"], data["seconds"], data.get("backend", "")),
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(dst, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
