#!/usr/bin/python3
"""Whether the BPF object's deepest call chain fits the stack the oldest supported verifier allows.

  check_bpf_stack.py OBJECT [--objdump PATH]

Debian 12's 6.1 verifier refuses a program when, along any chain of calls from an entry point
(BPF-to-BPF calls, and callbacks such as bpf_loop's, whose address is loaded with ld_imm64), the
frames add up to more than 512 bytes, each frame rounded up to 32 ("combined stack size of N calls
is M. Too large"). Newer kernels accepted a program that 6.1 refused, so only a VM run would
otherwise see it. The frame of a function is read from its code: the deepest r10 offset it uses.

Prints every entry point's deepest chain; exits 1 when one is over the limit.
"""

import argparse
import collections
import re
import subprocess
import sys

LIMIT = 512
SYMBOL = re.compile(r"^([0-9a-f]+)\s+(\w)\s+F\s+(\S+)\s+([0-9a-f]+)\s+(\S+)$")
FUNCTION = re.compile(r"^[0-9a-f]+ <(\w+)>:$")
STACK = re.compile(r"r10 - (0x[0-9a-f]+|\d+)\)")
LOAD_FUNC = re.compile(r"r\d+ = (\d+) ll$")
RELOC = re.compile(r"R_BPF_64_(32|64)\s+(\S+)$")


def frame(depth):
    return (max(depth, 1) + 31) // 32 * 32


def read(objdump, obj):
    symbols = subprocess.run([objdump, "-t", obj], check=True, capture_output=True,
                             text=True).stdout
    text_functions = {}  # .text offset -> name (callbacks are referenced by offset)
    entries = []
    for line in symbols.splitlines():
        m = SYMBOL.match(line.strip())
        if not m:
            continue
        address, section, name = int(m.group(1), 16), m.group(3), m.group(5)
        if section == ".text":
            text_functions[address] = name
        else:
            entries.append(name)
    code = subprocess.run([objdump, "-dr", "--no-show-raw-insn", obj], check=True,
                          capture_output=True, text=True).stdout
    stack = collections.defaultdict(int)
    calls = collections.defaultdict(set)
    current, loaded = None, None
    for line in code.splitlines():
        if m := FUNCTION.match(line.strip()):
            if not m.group(1).startswith("LBB"):
                current = m.group(1)
            continue
        if current is None:
            continue
        for offset in STACK.findall(line):
            stack[current] = max(stack[current], int(offset, 0))
        if m := RELOC.search(line):
            if m.group(1) == "32":
                calls[current].add(m.group(2))
            elif m.group(2) == ".text" and loaded in text_functions:
                calls[current].add(text_functions[loaded])
            continue
        m = LOAD_FUNC.search(line)
        loaded = int(m.group(1)) if m else None
    return entries, stack, calls


def deepest(name, stack, calls, seen=()):
    """(bytes, chain) of the deepest chain from NAME."""
    if name in seen:
        raise SystemExit(f"check_bpf_stack: recursion through {name}")
    best = (0, [])
    for callee in calls.get(name, ()):
        best = max(best, deepest(callee, stack, calls, seen + (name,)))
    return frame(stack[name]) + best[0], [name] + best[1]


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("object")
    p.add_argument("--objdump", default="llvm-objdump")
    args = p.parse_args()
    entries, stack, calls = read(args.objdump, args.object)
    if not entries:
        raise SystemExit("check_bpf_stack: no entry points found in " + args.object)
    over = False
    for entry in sorted(entries):
        total, chain = deepest(entry, stack, calls)
        path = " -> ".join(f"{f} ({stack[f]})" for f in chain)
        print(f"{entry}: {total} of {LIMIT} bytes: {path}")
        over |= total > LIMIT
    if over:
        print(f"check_bpf_stack: over the {LIMIT}-byte limit of the 6.1 verifier", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
