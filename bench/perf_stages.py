#!/usr/bin/python3
"""Where a packet's time goes: a `perf record -a -g` profile of one data-plane test, cut by stage
of the path and divided by the packets (or connections) the test moved.

  perf_stages.py --data FILE --count N [--unit packet|connection] [--comm REGEX] [--root REGEX]
                 [--marker REGEX ...]

Only samples of the benchmark's processes (--comm, default iperf3) whose stack holds --root
(default the UDP send call) count, and with --marker only the processes that have at least one
sample whose stack matches a marker (e.g. the TCP connect and accept of the connection test's
client and server, so that someone else's process of the same name stays out): on veth the router's and the server's work runs in the
sender's context (softirq), so the sender's stack holds the whole path, and other load on the
machine stays out. Each sample is put in one stage by its frames from the leaf up to the first
frame of the receive loop (a packet enters each namespace through the backlog): the stage is then
independent of the machine's load, unlike packets per second. cpu-clock samples at the profile's
frequency (perf's default, 4000 Hz): each sample is 1/4000 s of one CPU.

Prints one line per stage: microseconds per unit, and the share.
"""

import argparse
import collections
import re
import subprocess
import sys

RECEIVE_LOOP = re.compile(r"process_backlog|net_rx_action|__netif_receive_skb|handle_softirqs|"
                          r"do_softirq")
# In the order they are tried on the frames below the receive loop (or the whole stack of the
# sender's own send path).
STAGES = [
    # Waking the client or the server (a socket became readable): scheduler work whose cost
    # depends on whether the other process sleeps on another CPU (an IPI, dear in a VM), so on
    # the test's timing rather than on the path.
    ("wake-ups of the test's processes",
     re.compile(r"sock_def_readable|try_to_wake_up|__wake_up|ep_poll_callback")),
    ("xlat64 device: tc program and redirect",
     re.compile(r"tc_run|tcf_classify|cls_bpf|bpf_prog_|skb_do_redirect|__bpf_redirect")),
    ("netfilter: nftables rules and sets", re.compile(r"nft_|nf_conncount")),
    ("netfilter: conntrack and NAT",
     re.compile(r"nf_hook_slow|nf_nat|nf_conntrack|nf_ct_|ipv4_confirm|nf_confirm")),
]
SERVER = re.compile(r"ip_local_deliver|udp_rcv|__udp4_lib_rcv|udp_queue|udp_unicast|"
                    r"__udp_enqueue|sock_def_readable|tcp_v4_rcv|tcp_v6_rcv")
IPV6 = re.compile(r"ipv6_rcv|ip6_|fib6|rt6_|ipv6_|icmp6|ndisc")
IPV4 = re.compile(r"ip_forward|ip_output|ip_finish_output|ip_route_input|fib_table|"
                  r"fib_validate|ip_rcv|ip_sublist|neigh_")
DEVICE = re.compile(r"dev_queue_xmit|veth_|dev_hard_start|validate_xmit|sch_direct|netif_rx|"
                    r"enqueue_to_backlog|tun_")


def stage(frames):
    below = []
    for f in frames:
        if RECEIVE_LOOP.search(f):
            break
        below.append(f)
    received = len(below) < len(frames)
    joined = " ".join(below)
    for name, rx in STAGES:
        if rx.search(joined):
            return name
    if not received:
        return "sender: socket and IP output"
    if SERVER.search(joined):
        return "receiver: delivery to the socket"
    if IPV6.search(joined):
        return "router: IPv6 receive and forward"
    if IPV4.search(joined):
        return "router/receiver: IPv4 receive (and forward)"
    if DEVICE.search(joined):
        return "device transmit (veth, xlat64)"
    return "receive loop (backlog, softirq)"


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--count", type=float, required=True, help="packets or connections moved")
    p.add_argument("--unit", default="packet")
    p.add_argument("--comm", default="iperf3")
    p.add_argument("--root", default=r"udp(v6)?_sendmsg")
    p.add_argument("--marker", action="append", default=[])
    p.add_argument("--hz", type=float, default=4000)
    args = p.parse_args()
    if args.count <= 0:
        print("perf_stages: nothing was moved", file=sys.stderr)
        return 1
    script = subprocess.run(["perf", "script", "-i", args.data, "-F", "comm,pid,ip,sym"],
                            capture_output=True, text=True)
    comm = re.compile(args.comm)
    root = re.compile(args.root)
    markers = [re.compile(m) for m in args.marker]
    samples = []  # (pid, frames)
    marked = set()
    for block in script.stdout.split("\n\n"):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines or not comm.match(lines[0].split()[0]):
            continue
        pid = lines[0].split()[1]
        frames = [line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else "?"
                  for line in lines[1:]]
        if any(m.search(f) for m in markers for f in frames):
            marked.add(pid)
        if any(root.search(f) for f in frames):
            samples.append((pid, frames))
    stages = collections.Counter()
    for pid, frames in samples:
        if not markers or pid in marked:
            stages[stage(frames)] += 1
    total = sum(stages.values())
    us = 1e6 / args.hz / args.count
    print(f"{total * us:7.2f} us per {args.unit} in the sender's context "
          f"({total} samples, {args.count:.0f} {args.unit}s)")
    for name, n in stages.most_common():
        print(f"{n * us:7.2f} us  {100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
