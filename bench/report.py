#!/usr/bin/env python3
"""Turns bench/run's raw measurements (one JSON object per line) into results.json,
results.csv, results.svg and a table on stdout. Standard library only."""

import csv
import json
import re
import sys
from html import escape

FINAL = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, ([\d.]+) ms 50th, ([\d.]+) ms 95th, ([\d.]+) ms 99th, "
    r"([\d.]+) ms 99\.9th\."
)
# The librdkafka_perf example's summary line.
LIBRDKAFKA = re.compile(r"librdkafka: (\d+) records, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


def ms(v):
    """A latency from the summary line: whole milliseconds, or three decimals with
    --precise-latency."""
    return float(v) if "." in v else int(v)


def wall_rate(m):
    """(records/s, MiB/s) over the measurement's wall time."""
    secs = float(m["wall_secs"])
    return m["records"] / secs, m["records"] * m["record_size"] / secs / 1048576


def parse(raw):
    limits, rows, scale = {}, [], []
    for m in raw:
        if m["kind"] == "limit":
            limits[m["name"]] = {"mb_per_sec": m["mb_per_sec"], "tool": m["tool"]}
            continue
        if m["kind"] in ("idle", "lifecycle", "anomaly"):
            scale.append(m)
            continue
        row = {
            k: m[k]
            for k in ("name", "kind", "client", "partitions", "acks", "record_size", "records")
        }
        row["acks"] = str(row["acks"])
        row["broker"] = m.get("broker", "krust")
        # A paced run keeps to half the rate this Tansu engine reached (see bench/run).
        row["paced_to"] = m.get("paced_to") or None
        out = str(m.get("output", ""))
        row.update(mb_per_sec=None, records_per_sec=None, p50_ms=None, p99_ms=None,
                   p999_ms=None, avg_ms=None)
        # krust's own perf tools (every krust-* client).
        ours = m["client"].startswith("krust")
        if ours and m["kind"] == "produce":
            f = FINAL.search(out)
            if f:
                row.update(records_per_sec=float(f[2]), mb_per_sec=float(f[3]),
                           avg_ms=float(f[4]), p50_ms=ms(f[6]), p99_ms=ms(f[8]),
                           p999_ms=ms(f[9]))
        elif m["client"] == "librdkafka":
            f = LIBRDKAFKA.search(out)
            if f:
                row.update(records_per_sec=float(f[2]), mb_per_sec=float(f[3]))
        elif ours and m["kind"] == "consume":
            # fetch.MB.sec and fetch.nMsg.sec: the rate once the group is joined (Kafka's
            # group.initial.rebalance.delay.ms alone is 3 s of joining a new group).
            cols = [c.strip() for c in out.split(",")]
            if len(cols) == 10:
                row.update(mb_per_sec=float(cols[8]), records_per_sec=float(cols[9]))
        else:
            # Timed from outside: includes connecting and metadata.
            row["records_per_sec"], row["mb_per_sec"] = wall_rate(m)
        if row["broker"] == "krust-sustained":
            # Timed until synced to the device: the wall time, not the producer's own rate
            # (which is how fast the page cache took the records).
            row["acked_mb_per_sec"] = row["mb_per_sec"]
            row["records_per_sec"], row["mb_per_sec"] = wall_rate(m)
        row["wall_secs"] = round(float(m["wall_secs"]), 3)
        row["broker_cpu_secs"] = round(float(m["broker_cpu_secs"]), 3)
        row["broker_rss_mb"] = round(int(m["broker_rss_kb"]) / 1024, 1)
        row["broker_peak_rss_mb"] = round(int(m["broker_hwm_kb"]) / 1024, 1)
        rows.append(row)
    return limits, rows, scale


def relevant_limit(row, limits):
    tcp = limits.get("tcp_loopback", {}).get("mb_per_sec")
    disk = limits.get("disk_write_nofsync", {}).get("mb_per_sec")
    if row["kind"] == "consume":
        return "tcp_loopback", tcp
    if row["broker"] in ("krust-fsync", "krust-sustained"):
        return "disk_write_fsync", limits.get("disk_write_fsync", {}).get("mb_per_sec")
    cands = [(n, v) for n, v in (("tcp_loopback", tcp), ("disk_write_nofsync", disk)) if v]
    return min(cands, key=lambda c: c[1]) if cands else (None, None)


def svg(limits, rows):
    bars = [(f"limit: {n} ({l['tool']})", l["mb_per_sec"], "#999999") for n, l in limits.items()]
    colors = {"krust": "#d9534f", "kcat": "#337ab7", "librdkafka": "#5bc0de", "krust-rf3": "#f0ad4e",
              "krust-rf3-half": "#f7d08a"}
    for r in rows:
        # Paced runs keep to a rate chosen for them: their throughput says nothing; the
        # linger.ms=0 runs only find the rate for the paced ones.
        if r["mb_per_sec"] is not None and r["paced_to"] is None and r["client"] != "krust-l0":
            color = colors.get(r["client"], "#5cb85c") if r["broker"] == "krust" else "#5cb85c"
            bars.append((f"{r['broker']} ({r['client']}) {r['kind']} {r['record_size']}B "
                         f"p={r['partitions']} acks={r['acks']}", r["mb_per_sec"], color))
    top = max([b[1] for b in bars] + [1.0])
    label_w, bar_w, h, pad = 400, 520, 18, 4
    height = 40 + len(bars) * (h + pad) + 20
    width = label_w + bar_w + 110
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="14" font-weight="bold">krust bench: throughput (MiB/s)</text>']
    for i, (label, v, color) in enumerate(bars):
        y = 35 + i * (h + pad)
        w = max(1.0, bar_w * v / top)
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{h}" fill="{color}"/>')
        out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{v:.1f}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def fmt(v, spec):
    width = int(re.match(r"\d+", spec)[0])
    if v is None:
        return "-".rjust(width)
    if isinstance(v, float) and spec.endswith("d"):
        # A latency printed to the microsecond: as many decimals as the column has room for.
        return format(v, f"{width}.{2 if v < 10 else 1 if v < 100 else 0}f")
    return format(v, spec)


def main():
    raw_path, out_dir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(raw_path) as f:
        raw = [json.loads(line) for line in f if line.strip()]
    limits, rows, scale = parse(raw)
    for r in rows:
        name, lim = relevant_limit(r, limits)
        r["limit"] = name
        r["ratio_to_limit"] = (round(r["mb_per_sec"] / lim, 4)
                               if lim and r["mb_per_sec"] is not None and r["paced_to"] is None
                               else None)
    # Three nodes (RF=3, acks=all) against one node (acks=all), same workload.
    single = {(r["partitions"], r["record_size"]): r["mb_per_sec"] for r in rows
              if r["client"] == "krust" and r["broker"] == "krust" and r["kind"] == "produce"
              and r["acks"] == "all"}
    for r in rows:
        base = single.get((r["partitions"], r["record_size"]))
        r["ratio_to_single_node"] = (round(r["mb_per_sec"] / base, 4)
                                     if (r["client"] == "krust-rf3" or r["broker"] == "krust-fsync")
                                     and r["kind"] == "produce" and base and r["mb_per_sec"] else None)
    # krust against each Tansu engine: same workload, same client. Throughput from the
    # unthrottled runs; p99 from the paced ones, where both brokers got the same load (an
    # unthrottled p99 is mostly time queued in the producer).
    def key(r):
        return (r["kind"], r["client"], r["partitions"], r["acks"], r["record_size"],
                r["paced_to"])
    peers = {}
    for r in rows:
        if r["broker"].startswith("tansu"):
            peers[(r["broker"],) + key(r)] = r
    for r in rows:
        for engine in ("tansu-memory", "tansu-sqlite"):
            col = engine.replace("-", "_")
            r[f"ratio_to_{col}"] = None
            r[f"p99_ratio_to_{col}"] = None
            r[f"cpu_ratio_to_{col}"] = None
            peer = peers.get((engine,) + key(r))
            if r["broker"] != "krust" or peer is None:
                continue
            if r["paced_to"] is None:
                if r["mb_per_sec"] and peer["mb_per_sec"]:
                    r[f"ratio_to_{col}"] = round(r["mb_per_sec"] / peer["mb_per_sec"], 3)
                # Broker CPU per record: the client shares the two cores, so throughput
                # alone understates how much less work a broker does for the same records.
                if r["broker_cpu_secs"] and peer["broker_cpu_secs"] and r["records"] and peer["records"]:
                    r[f"cpu_ratio_to_{col}"] = round(
                        (r["broker_cpu_secs"] / r["records"])
                        / (peer["broker_cpu_secs"] / peer["records"]), 3)
            elif r["p99_ms"] and peer["p99_ms"]:
                # Three significant digits: a peer that fell behind can be 1000x slower.
                r[f"p99_ratio_to_{col}"] = float(f"{r['p99_ms'] / peer['p99_ms']:.3g}")
    with open(f"{out_dir}/results.json", "w") as f:
        json.dump({"mode": mode, "limits": limits, "workloads": rows,
                   "many_partitions": [m for m in scale if m["kind"] != "anomaly"],
                   "anomalies": [m for m in scale if m["kind"] == "anomaly"]}, f, indent=2)
    cols = ["name", "kind", "broker", "client", "partitions", "acks", "record_size", "records",
            "mb_per_sec", "records_per_sec", "avg_ms", "p50_ms", "p99_ms", "p999_ms",
            "broker_cpu_secs", "broker_rss_mb", "broker_peak_rss_mb", "wall_secs",
            "acked_mb_per_sec", "paced_to", "limit",
            "ratio_to_limit", "ratio_to_single_node", "ratio_to_tansu_memory",
            "p99_ratio_to_tansu_memory", "cpu_ratio_to_tansu_memory", "ratio_to_tansu_sqlite",
            "p99_ratio_to_tansu_sqlite", "cpu_ratio_to_tansu_sqlite"]
    with open(f"{out_dir}/results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c) for c in cols})
    with open(f"{out_dir}/results.svg", "w") as f:
        f.write(svg(limits, rows))

    print(f"\nPhysical limits ({mode} run):")
    for n, l in limits.items():
        print(f"  {n:<20} {l['mb_per_sec']:>10.1f} MiB/s  ({l['tool']})")
    head = (f"{'workload':<8} {'broker':<15} {'client':<14} {'size':>5} {'parts':>5} {'acks':>4} {'MiB/s':>8} "
            f"{'records/s':>11} {'p50':>5} {'p99':>5} {'p99.9':>6} {'cpu s':>6} {'RSS MiB':>8} "
            f"{'peak':>6}  ratio to limit")
    print("\n" + head)
    print("-" * len(head))
    for r in rows:
        ratio = ("-" if r["ratio_to_limit"] is None
                 else f"{r['ratio_to_limit']:.3f} of {r['limit']}")
        if r["ratio_to_single_node"] is not None:
            ratio += f"; {r['ratio_to_single_node']:.3f} of one node"
        if r["paced_to"] is not None:
            ratio = f"paced to {r['paced_to']}"
        for engine in ("tansu_memory", "tansu_sqlite"):
            if r[f"ratio_to_{engine}"] is not None:
                ratio += f"; {r[f'ratio_to_{engine}']:.2f}x {engine.replace('_', '-')}"
                if r[f"cpu_ratio_to_{engine}"] is not None:
                    ratio += f" (CPU/record {r[f'cpu_ratio_to_{engine}']:.2f}x)"
            if r[f"p99_ratio_to_{engine}"] is not None:
                ratio += f"; p99 {r[f'p99_ratio_to_{engine}']:.2g}x {engine.replace('_', '-')}'s"
        print(f"{r['kind']:<8} {r['broker']:<15} {r['client']:<14} {r['record_size']:>5} {r['partitions']:>5} "
              f"{r['acks']:>4} {fmt(r['mb_per_sec'], '8.1f')} {fmt(r['records_per_sec'], '11.0f')} "
              f"{fmt(r['p50_ms'], '5d')} {fmt(r['p99_ms'], '5d')} {fmt(r['p999_ms'], '6d')} "
              f"{r['broker_cpu_secs']:6.2f} {r['broker_rss_mb']:8.1f} {r['broker_peak_rss_mb']:6.1f}  {ratio}")
    print("\nLatencies in ms (krust producer-perf-test: enqueue to ack; unthrottled except in "
          "the half-load and paced rows, so they include time queued in the producer's 32 MiB "
          "buffer); '-' = not measured.")
    if any(r["client"].startswith("krust-rf3") for r in rows):
        print("krust-rf3: three nodes, replication factor 3, min.insync.replicas=2; CPU and RSS "
              "summed over the three; 'of one node' compares with krust alone at acks=all; "
              "krust-rf3-half: the same at half the throughput krust-rf3 reached (service latency).")
    if any(r["broker"] == "krust-fsync" for r in rows):
        print("krust-fsync: one node with log.flush.interval.messages=1 (fsync after every append); "
              "'of one node' compares with the default flush policy at acks=all.")
    if any(r["broker"] == "krust-sustained" for r in rows):
        print("krust-sustained: one node, acks=1, timed until the data is synced to the device "
              "(syncfs after the producer finishes), against fio's write-then-fsync bandwidth for "
              "the same number of bytes.")
    if any(r["client"] == "librdkafka" for r in rows):
        print("librdkafka: the rdkafka crate's bundled librdkafka (example librdkafka_perf), "
              "linger.ms=5; produce timed from the first record to the last delivery report, "
              "consume (a new group, from the earliest offset) from the first record received.")
    if any(r["broker"].startswith("tansu") for r in rows):
        print("Nx tansu-*: krust's throughput over Tansu's (same client, workload); CPU/record: "
              "krust's broker CPU per record over Tansu's (below 1 is better). Paced rows "
              "(client krust-paced): the same produce at half the records/s that Tansu engine "
              "reached (latencies to the microsecond), against it and against krust; "
              "p99 Nx: krust's p99 over Tansu's at that same load (below 1 is better). "
              "krust-l0: Tansu unthrottled with linger.ms=0, to find its rate there; "
              "krust-paced-l0: paced at half that rate, with linger.ms=0, against it and "
              "against krust (no batching wait in the producer: the brokers' latency).")
    for m in scale:
        if m["kind"] == "anomaly":
            if "error" in m:
                print(f"\nWARNING {m['name']}: failed against {m['broker']}: {m['error']}")
            else:
                print(f"\nWARNING {m['name']}: {m['broker']} acknowledged {m['records_sent']} records; "
                      f"its log ends at {m['records_in_log']}")
    if any(m["kind"] != "anomaly" for m in scale):
        print("\nMany partitions (one node):")
        for m in scale:
            if m["kind"] == "anomaly":
                continue
            if m["kind"] == "idle":
                print(f"  {m['name']:<28} {m['partitions']:>6} partitions  RSS {m['rss_kb'] / 1024:6.1f} MiB"
                      f"  (peak {m['hwm_kb'] / 1024:6.1f})  open files {m['open_files']}")
            else:
                print(f"  {m['name']:<28} {m['partitions']:>6} partitions  {m['secs']:8.3f} s")
    print(f"Results: {out_dir}/results.json, results.csv, results.svg")


if __name__ == "__main__":
    main()
