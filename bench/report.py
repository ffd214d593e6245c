#!/usr/bin/python3
"""Turns the raw results of bench/dataplane.sh into a table (stdout) and a JSON file.

Each figure of each mode is the median of its runs, and is given as a ratio to its limit
measured in the same run: tayga and siit against ipv6-forward, nat64 against nat44. With
--smoke it only checks that every mode moved traffic in every figure (exit 1 otherwise).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

LIMIT = {"ipv6-forward": None, "nat44": None, "tayga": "ipv6-forward", "siit": "ipv6-forward",
         "nat64": "nat44", "siit-ingress": "ipv6-forward", "nat64-ingress": "nat44"}
# The targets of issue 7 (ratio to the limit); TAYGA has none, it is the peer to beat.
TARGET = {"siit": 0.9, "nat64": 0.8, "siit-ingress": 0.9, "nat64-ingress": 0.8}
FIGURES = [  # key, column title, scale, unit format
    ("udp_pps", "UDP kpps (64 B)", 1e-3, "{:.1f}"),
    ("tcp_up_bps", "TCP up Gbit/s", 1e-9, "{:.2f}"),
    ("tcp_down_bps", "TCP down Gbit/s", 1e-9, "{:.2f}"),
    ("tcp_cps", "TCP conn/s", 1, "{:.0f}"),
]


def machine():
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name, cmd in (("iperf3", ["iperf3", "--version"]), ("tayga", ["dpkg-query", "-W", "-f",
                      "${Version}", "tayga"])):
        try:
            versions[name] = subprocess.run(cmd, capture_output=True, text=True,
                                            timeout=5).stdout.splitlines()[0].strip()
        except Exception:
            versions[name] = None
    load = os.getloadavg()
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu,
            "hostname": platform.node(), "loadavg_at_end": [round(x, 2) for x in load],
            **{f"{k}_version": v for k, v in versions.items()}}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--raw", required=True)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--output")
    args = p.parse_args()

    rows = [json.loads(l) for l in open(args.raw) if l.strip()]
    modes = []
    for r in rows:
        if r["mode"] not in modes:
            modes.append(r["mode"])
    values = {}
    notes = {}
    for r in rows:
        values.setdefault((r["mode"], r["figure"]), []).append(r["value"])
        notes.setdefault((r["mode"], r["figure"]), []).append(r["note"])

    results = {}
    for mode in modes:
        results[mode] = {"limit": LIMIT.get(mode), "target": TARGET.get(mode), "figures": {}}
        for fig, *_ in FIGURES:
            runs = values.get((mode, fig), [])
            results[mode]["figures"][fig] = {
                "median": statistics.median(runs) if runs else None, "runs": runs,
                "notes": notes.get((mode, fig), [])}
    # The ratio is paired: each run's value over its limit's value in the same run (the modes of
    # one run are measured back to back), then the median of those ratios. Load that comes and
    # goes on the machine then shifts a mode and its limit together instead of skewing the ratio.
    for mode in modes:
        limit = LIMIT.get(mode)
        for fig, *_ in FIGURES:
            f = results[mode]["figures"][fig]
            f["ratio"] = f["ratio_of_medians"] = f["ratios_per_run"] = None
            if not limit or limit not in results:
                continue
            lim = results[limit]["figures"][fig]
            by_run = {r["run"]: r["value"] for r in rows if r["mode"] == limit and r["figure"] == fig}
            per_run = [r["value"] / by_run[r["run"]] for r in rows
                       if r["mode"] == mode and r["figure"] == fig and by_run.get(r["run"])]
            if per_run:
                f["ratios_per_run"] = [round(x, 3) for x in per_run]
                f["ratio"] = round(statistics.median(per_run), 3)
            if lim["median"]:
                f["ratio_of_medians"] = round(f["median"] / lim["median"], 3)

    # The table.
    head = f"{'mode':<13}" + "".join(f"{title:>24}" for _, title, _, _ in FIGURES)
    print()
    print(f"Data plane, median of {args.runs} run(s) of {args.seconds:g} s; (ratio): median of the "
          "per-run ratios to ipv6-forward (tayga, siit) or nat44 (nat64)")
    print(head)
    print("-" * len(head))
    for mode in modes:
        cells = []
        for fig, _, scale, fmt in FIGURES:
            f = results[mode]["figures"][fig]
            if f["median"] is None:
                cells.append(f"{'-':>24}")
                continue
            text = fmt.format(f["median"] * scale)
            if f["ratio"] is not None:
                text += f" ({f['ratio']:.2f})"
            cells.append(f"{text:>24}")
        print(f"{mode:<13}" + "".join(cells))
    target_lines = []
    for mode, target in TARGET.items():
        if mode not in results or not results[mode]["limit"] in results:
            continue
        below = [fig for fig, *_ in FIGURES
                 if (results[mode]["figures"][fig]["ratio"] or 0) < target]
        target_lines.append(f"{mode}: target >= {target} of {results[mode]['limit']}: "
                            + ("met" if not below else "NOT met in " + ", ".join(below)))
    if not args.smoke:  # one second per figure says whether traffic moves, not how fast
        for line in target_lines:
            print(line)
    m = machine()
    print(f"machine: {m['cpu']}, {m['nproc']} CPUs, kernel {m['kernel']}, "
          f"load average at the end {m['loadavg_at_end']}")

    doc = {"benchmark": "dataplane", "date": datetime.datetime.now(datetime.timezone.utc)
           .isoformat(timespec="seconds"), "smoke": args.smoke, "runs": args.runs,
           "seconds_per_test": args.seconds, "machine": m,
           "figures": {fig: title for fig, title, _, _ in FIGURES}, "modes": results}
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"results: {args.output}")

    if args.smoke:
        dead = [f"{mode} {fig}" for mode in modes for fig, *_ in FIGURES
                if not results[mode]["figures"][fig]["median"]]
        if dead:
            print("SMOKE FAIL: no traffic in: " + ", ".join(dead), file=sys.stderr)
            return 1
        print("SMOKE PASS: every mode moved traffic in every figure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
