"""Plots results/runs.jsonl (Benchmarks/run.sh): per configuration, the median messages/s and
p99 round trip of every server, side by side. Usage: python3 plot.py [runs.jsonl] [out.png]
Needs matplotlib (pip install matplotlib)."""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from summarize import load, medians  # noqa: E402


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "results/runs.jsonl"
    out = sys.argv[2] if len(sys.argv) > 2 else "results/benchmarks.png"
    runs = load(source)
    configs = list(dict.fromkeys(config for config, _ in runs))
    targets = list(dict.fromkeys(target for _, target in runs))
    figure, axes = plt.subplots(2, len(configs), figsize=(4 * len(configs), 7), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for column, config in enumerate(configs):
        rows = [medians(runs.get((config, t), [])) or {} for t in targets]
        for row_index, (key, title) in enumerate([("messagesPerSecond", "messages/s"), ("p99Microseconds", "p99 round trip (µs)")]):
            axis = axes[row_index][column]
            axis.bar(range(len(targets)), [r.get(key, 0) for r in rows], color=colours[:len(targets)])
            axis.set_xticks(range(len(targets)), targets, rotation=60, ha="right", fontsize=8)
            axis.set_title(f"{config}: {title}", fontsize=9)
    figure.suptitle("Echo servers, same run, medians (server on CPU 0, load tool on CPU 1)")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
