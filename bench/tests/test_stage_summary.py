#!/usr/bin/python3
"""bench/stage_summary.py on reports shaped like dataplane.sh --profile writes them: medians per
stage over the runs, a stage missing from a run counted as 0, other sections ignored."""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SUMMARY = os.path.join(HERE, "..", "stage_summary.py")


def report(unit, total, stages):
    lines = ["== by symbol (all CPUs, no children)", "    11.82%  [k] _raw_spin_unlock_irqrestore",
             f"== per {unit}, by stage of the path (bench/perf_stages.py)",
             f"{total:7.2f} us per {unit} in the sender's context (100 samples, 1000 {unit}s)"]
    lines += [f"{us:7.2f} us  {50.0:5.1f}%  {name}" for name, us in stages.items()]
    return "\n".join(lines) + "\n"


def rows(section):
    """{stage: value} of a one-mode table (its first two lines are the headers)."""
    return {line.rsplit(None, 1)[0].strip(): float(line.rsplit(None, 1)[1])
            for line in section.split("\n")[2:] if line.strip()}


def main():
    with tempfile.TemporaryDirectory() as d:
        runs = {
            "nat44-run1-cps.txt": report("connection", 60.0, {"sender: socket and IP output": 30.0}),
            "nat44-run2-cps.txt": report("connection", 70.0, {"sender: socket and IP output": 34.0,
                                                               "wake-ups of the test's processes": 8.0}),
            "nat44-run3-cps.txt": report("connection", 90.0, {"sender: socket and IP output": 31.0,
                                                               "wake-ups of the test's processes": 9.0}),
            "nat64-run1-udp.txt": report("packet", 8.0, {"xlat64 device: tc program and redirect": 1.0}),
            # A report without its per-stage section (perf failed) is left out, not counted as 0.
            "nat64-run2-udp.txt": "== by symbol (all CPUs, no children)\n",
        }
        for name, text in runs.items():
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(text)
        out = subprocess.run([sys.executable, SUMMARY, "--dir", d, "--modes", "nat44,nat64"],
                             capture_output=True, text=True, check=True).stdout
        print(out)
        udp, cps = out.strip().split("\n\n")
        assert udp.startswith("microseconds of CPU per packet (udp test), median of nat64: 1 run(s)"), udp
        assert cps.startswith("microseconds of CPU per connection (cps test), median of nat44: 3 run(s)"), cps
        assert rows(udp) == {"total": 8.0, "xlat64 device: tc program and redirect": 1.0}, udp
        # Run 1 has no wake-up stage: its 0 is one of the three values whose median is taken.
        assert rows(cps) == {"total": 70.0, "sender: socket and IP output": 31.0,
                             "wake-ups of the test's processes": 8.0}, cps
    # No reports at all: an error, not an empty table.
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([sys.executable, SUMMARY, "--dir", d, "--modes", "nat44"],
                           capture_output=True, text=True)
        assert r.returncode == 1 and "no per-stage profiles" in r.stderr, r
    print("stage_summary: ok")


if __name__ == "__main__":
    main()
