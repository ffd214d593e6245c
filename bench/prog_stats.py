#!/usr/bin/python3
"""Nanoseconds per run of BPF programs over a test: the kernel's own run-time statistics.

  prog_stats.py --seconds S ID [ID ...]

Holds a BPF_ENABLE_STATS file descriptor for S seconds (the kernel counts run time and runs of
every program while one is open, and stops when the last one closes: nothing to restore), and
prints one line per program: its name, runs, and nanoseconds per run. This is what `bpftool prog
profile` would show, which Debian 12's bpftool is built without. The counting itself costs two
clock reads per run, so the benchmark uses it only with --profile, never for the rates.
"""

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

NR_BPF = {"x86_64": 321, "aarch64": 280}
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0


def enable_stats():
    libc = ctypes.CDLL(None, use_errno=True)
    nr = NR_BPF.get(os.uname().machine)
    if nr is None:
        raise OSError(f"bpf() syscall number unknown on {os.uname().machine}")
    attr = (ctypes.c_uint32 * 2)(BPF_STATS_RUN_TIME, 0)
    fd = libc.syscall(nr, BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"BPF_ENABLE_STATS: {os.strerror(err)}")
    return fd


def sample(prog_id):
    info = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "id", str(prog_id)],
                                     check=True, capture_output=True, text=True).stdout)
    return info.get("name", "?"), info.get("run_time_ns", 0), info.get("run_cnt", 0)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("ids", nargs="+", type=int)
    args = p.parse_args()
    fd = enable_stats()
    try:
        before = {i: sample(i) for i in args.ids}
        time.sleep(args.seconds)
        after = {i: sample(i) for i in args.ids}
    finally:
        os.close(fd)
    for i in args.ids:
        name, ns0, runs0 = before[i]
        _, ns1, runs1 = after[i]
        runs = runs1 - runs0
        per_run = f"{(ns1 - ns0) / runs:.0f} ns per run" if runs else "no runs"
        print(f"{name} (id {i}): {runs} runs, {per_run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
