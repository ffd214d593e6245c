#!/usr/bin/python3
"""bench/perf_stages.py's stage of a sample, from its frames (leaf first), as `perf script`
prints them."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import perf_stages  # noqa: E402

RX = ["process_backlog", "__napi_poll", "net_rx_action", "handle_softirqs"]
CASES = [
    # The client's own send path, never through the receive loop.
    (["tcp_v6_connect", "__sys_connect"], "sender: socket and IP output"),
    # The server woken by the handshake's last ACK: scheduler work, not delivery.
    (["_raw_spin_unlock_irqrestore", "sock_def_readable", "tcp_child_process", "tcp_v4_rcv",
      "ip_local_deliver_finish"] + RX, "wake-ups of the test's processes"),
    (["__inet_lookup_established", "tcp_v4_rcv", "ip_local_deliver_finish"] + RX,
     "receiver: delivery to the socket"),
    (["bpf_prog_3155776ba649203c_xlat_6to4", "cls_bpf_classify", "tc_run"] + RX,
     "xlat64 device: tc program and redirect"),
    (["nft_rhash_update", "nft_do_chain"] + RX, "netfilter: nftables rules and sets"),
    (["__nf_conntrack_find_get", "nf_conntrack_in"] + RX, "netfilter: conntrack and NAT"),
    (["fib6_table_lookup", "ip6_route_input", "ipv6_rcv"] + RX, "router: IPv6 receive and forward"),
    # Frames above the receive loop (the sender's syscall below it) do not decide the stage.
    (["process_backlog", "net_rx_action", "sock_def_readable", "tcp_v6_connect"],
     "receive loop (backlog, softirq)"),
]


def main():
    for frames, want in CASES:
        got = perf_stages.stage(frames)
        assert got == want, f"{frames}: {got!r}, want {want!r}"
    print(f"perf_stages: {len(CASES)} stacks staged as expected")


if __name__ == "__main__":
    main()
