#!/usr/bin/python3
"""The per-stage profile of a whole `--profile` run, one table per test: for every mode, the
median over the runs of each stage's microseconds per packet (UDP) or per connection, as
bench/perf_stages.py appended them to DIR/MODE-runN-FIGURE.txt.

  stage_summary.py --dir DIR --modes a,b,...

One run's stages swing with the machine; the medians of several are what to compare modes with.
"""

import argparse
import collections
import glob
import os
import re
import statistics
import sys

TESTS = [("udp", "packet"), ("cps", "connection")]
TOTAL = re.compile(r"\s*([\d.]+) us per \w+ in the sender's context")
STAGE = re.compile(r"\s*([\d.]+) us\s+[\d.]+%\s+(.+)")


def stages_of(path, unit):
    """{stage: us} and the total from the perf_stages section of one report, or None."""
    text = open(path, encoding="utf-8").read()
    marker = f"== per {unit}, by stage of the path"
    if marker not in text:
        return None
    found, total = {}, None
    for line in text.split(marker, 1)[1].splitlines()[1:]:
        if line.startswith("=="):
            break
        if m := TOTAL.match(line):
            total = float(m.group(1))
        elif m := STAGE.match(line):
            found[m.group(2).strip()] = float(m.group(1))
    return (found, total) if total is not None else None


def table(directory, modes, test, unit):
    per_mode = {}
    for mode in modes:
        runs = []
        for path in sorted(glob.glob(os.path.join(directory, f"{mode}-run*-{test}.txt"))):
            if (parsed := stages_of(path, unit)) is not None:
                runs.append(parsed)
        if runs:
            per_mode[mode] = runs
    if not per_mode:
        return []
    names = sorted({s for runs in per_mode.values() for found, _ in runs for s in found})
    width = max(len(n) for n in names + ["total"])
    cols = list(per_mode)
    lines = [f"microseconds of CPU per {unit} ({test} test), median of "
             + ", ".join(f"{m}: {len(per_mode[m])}" for m in cols) + " run(s)",
             " " * width + "".join(f"{m:>15}" for m in cols)]

    def row(name, values):
        return f"{name:<{width}}" + "".join(f"{v:15.2f}" for v in values)

    lines.append(row("total", [statistics.median(t for _, t in per_mode[m]) for m in cols]))
    for name in names:
        # A stage a run did not sample counts as 0 in that run.
        lines.append(row(name, [statistics.median(found.get(name, 0.0) for found, _ in per_mode[m])
                                for m in cols]))
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True)
    p.add_argument("--modes", required=True)
    args = p.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    out = []
    for test, unit in TESTS:
        if lines := table(args.dir, modes, test, unit):
            out += lines + [""]
    if not out:
        print(f"stage_summary: no per-stage profiles in {args.dir}", file=sys.stderr)
        return 1
    print("\n".join(out).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
