"""Turns results/runs.jsonl (Benchmarks/run.sh) into markdown tables: per configuration, one
row per server with the median over repeats of each figure, and ratios against the routed
Conduit echo. Usage: python3 summarize.py [results/runs.jsonl] > results/tables.md"""
import json
import statistics
import sys
from collections import defaultdict

FIELDS = [  # (key, heading, format)
    ("messagesPerSecond", "msg/s", "{:,.0f}"),
    ("megabytesPerSecond", "MB/s", "{:,.1f}"),
    ("p50Microseconds", "p50 µs", "{:,.1f}"),
    ("p99Microseconds", "p99 µs", "{:,.1f}"),
    ("p999Microseconds", "p999 µs", "{:,.1f}"),
    ("serverCPUMicrosecondsPerMessage", "server µs CPU/msg", "{:.2f}"),
    ("serverPeakRSSKiB", "peak RSS MiB", "{:.1f}"),
    ("serverAnonRSSKiB", "anon RSS MiB", "{:.1f}"),
]


def load(path):
    runs = defaultdict(list)
    for line in open(path):
        run = json.loads(line)
        target, config = run["label"].split("/", 1)
        runs[(config, target)].append(run)
    return runs


def medians(runs):
    good = [r for r in runs if not r.get("failed")]
    if not good:
        return None
    out = {key: statistics.median(r[key] for r in good if r.get(key) is not None) for key, _, _ in FIELDS
           if any(r.get(key) is not None for r in good)}
    for key in ("serverPeakRSSKiB", "serverAnonRSSKiB"):
        if key in out:
            out[key] /= 1024
    out["repeats"] = len(good)
    out["bottleneck"] = statistics.mode(r["bottleneck"] for r in good)
    return out


def main():
    runs = load(sys.argv[1] if len(sys.argv) > 1 else "results/runs.jsonl")
    configs = list(dict.fromkeys(config for config, _ in runs))
    targets = list(dict.fromkeys(target for _, target in runs))
    for config in configs:
        print(f"\n### {config}\n")
        print("| server | " + " | ".join(h for _, h, _ in FIELDS) + " | CPU/msg vs conduit | bottleneck | runs |")
        print("|---" * (len(FIELDS) + 4) + "|")
        rows = {t: medians(runs.get((config, t), [])) for t in targets}
        base = rows.get("conduit") or {}
        for target, row in rows.items():
            if row is None:
                print(f"| {target} | " + " | ".join("failed" for _ in FIELDS) + " | | | 0 |")
                continue
            cells = [fmt.format(row[k]) if k in row else "–" for k, _, fmt in FIELDS]
            key = "serverCPUMicrosecondsPerMessage"
            ratio = f"{row[key] / base[key]:.2f}×" if key in row and base.get(key) else "–"
            print(f"| {target} | " + " | ".join(cells) + f" | {ratio} | {row['bottleneck']} | {row['repeats']} |")


if __name__ == "__main__":
    main()
