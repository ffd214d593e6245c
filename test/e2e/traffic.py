#!/usr/bin/python3
"""Traffic for the end-to-end tests: a TCP and UDP echo server and clients that verify content.

Only the standard library, so it runs on any Debian system (and in the vmlab guest).

  traffic.py serve --bind ADDR --port P [--peer-log FILE]
      TCP and UDP echo on ADDR:P. Every new peer (protocol, address, port) is appended to the
      peer log, so a test can check which source address the translator gave the client.
  traffic.py wait-listening --bind ADDR --port P
      Waits (up to 10 s) until something listens on ADDR:P (TCP).
  traffic.py tcp --to ADDR --port P --bytes N [--rate BYTES_PER_S]
      Sends N bytes of seeded pseudo-random data and reads the echo back at the same time; exits
      1 unless every byte came back in order (compared by SHA-256 and length). --rate paces the
      sending, so a flow lasts long enough to span something a test does meanwhile (a reload).
  traffic.py udp --to ADDR --port P --count N [--size S]
      Sends N numbered datagrams of S bytes, one at a time, and checks each echo.
"""

import argparse
import hashlib
import random
import selectors
import socket
import sys
import threading
import time


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


class PeerLog:
    """Appends each distinct peer once; shared by the TCP and UDP threads."""

    def __init__(self, path):
        self.path = path
        self.seen = set()
        self.lock = threading.Lock()

    def record(self, proto, peer):
        if not self.path:
            return
        entry = f"{proto} {peer[0]} {peer[1]}"
        with self.lock:
            if entry in self.seen:
                return
            self.seen.add(entry)
            with open(self.path, "a") as f:
                f.write(entry + "\n")


def echo_tcp_connection(conn, peer, peers):
    peers.record("tcp", peer)
    with conn:
        while True:
            data = conn.recv(1 << 16)
            if not data:
                return
            conn.sendall(data)


def serve_tcp(address, port, peers):
    sock = socket.socket(family_of(address), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(16)
    while True:
        conn, peer = sock.accept()
        threading.Thread(target=echo_tcp_connection, args=(conn, peer, peers), daemon=True).start()


def serve_udp(address, port, peers):
    sock = socket.socket(family_of(address), socket.SOCK_DGRAM)
    sock.bind((address, port))
    while True:
        data, peer = sock.recvfrom(1 << 16)
        peers.record("udp", peer)
        sock.sendto(data, peer)


def cmd_serve(args):
    peers = PeerLog(args.peer_log)
    threading.Thread(target=serve_udp, args=(args.bind, args.port, peers), daemon=True).start()
    serve_tcp(args.bind, args.port, peers)


def cmd_wait_listening(args):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open("/proc/net/tcp6" if ":" in args.bind else "/proc/net/tcp") as f:
            # state 0A is LISTEN; the local port is the hex after the colon of field 2
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == args.port:
                    return 0
        time.sleep(0.05)
    return 1


def pattern(seed, size):
    rng = random.Random(seed)
    return rng.randbytes(size)


def cmd_tcp(args):
    # One non-repeating stream, so reordered or duplicated segments cannot cancel out.
    payload = memoryview(pattern(args.seed, args.bytes))
    received_hash = hashlib.sha256()
    received = 0
    sent = 0
    start = time.monotonic()
    deadline = start + args.timeout
    source = (args.source, 0) if args.source else None
    sock = socket.create_connection((args.to, args.port), timeout=args.timeout, source_address=source)
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    writing = True
    while received < args.bytes:
        if time.monotonic() > deadline:
            print(f"tcp: timed out after {received} of {args.bytes} bytes echoed", file=sys.stderr)
            return 1
        allowed = args.bytes
        if args.rate:
            # A small burst, then no faster than the rate; ahead of it, only read for a while.
            allowed = min(args.bytes, int(args.rate * (time.monotonic() - start)) + 4096)
        want_write = sent < allowed
        if want_write != writing and sent < args.bytes:
            writing = want_write
            sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0))
        for _, events in sel.select(timeout=0.02 if args.rate else 1):
            if events & selectors.EVENT_WRITE and sent < allowed:
                sent += sock.send(payload[sent : min(sent + (1 << 16), allowed)])
                if sent == args.bytes:
                    sock.shutdown(socket.SHUT_WR)
                    sel.modify(sock, selectors.EVENT_READ)
                    writing = False
            if events & selectors.EVENT_READ:
                data = sock.recv(1 << 16)
                if not data:
                    print(f"tcp: connection closed after {received} bytes", file=sys.stderr)
                    return 1
                received_hash.update(data)
                received += len(data)
    sock.close()
    elapsed = time.monotonic() - start
    if received_hash.digest() != hashlib.sha256(payload).digest():
        print(f"tcp: content mismatch in the {args.bytes} bytes echoed", file=sys.stderr)
        return 1
    mbit = args.bytes * 8 / elapsed / 1e6
    print(f"tcp: {args.bytes} bytes echoed intact in {elapsed:.2f} s ({mbit:.0f} Mbit/s each way)")
    return 0


def cmd_udp(args):
    sock = socket.socket(family_of(args.to), socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.connect((args.to, args.port))
    for seq in range(args.count):
        payload = seq.to_bytes(4, "big") + pattern(seq, args.size - 4)
        for attempt in range(3):
            sock.send(payload)
            try:
                reply = sock.recv(1 << 16)
            except socket.timeout:
                continue
            if reply != payload:
                print(f"udp: datagram {seq}: echo differs from what was sent", file=sys.stderr)
                return 1
            break
        else:
            print(f"udp: datagram {seq}: no echo after 3 tries", file=sys.stderr)
            return 1
    print(f"udp: {args.count} datagrams of {args.size} bytes echoed intact")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--peer-log")
    p = sub.add_parser("wait-listening")
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p = sub.add_parser("tcp")
    p.add_argument("--to", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--seed", type=int, default=6052)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--rate", type=int, default=0, help="bytes per second (default: unpaced)")
    p.add_argument("--source", help="source address (default: the kernel's choice)")
    p = sub.add_parser("udp")
    p.add_argument("--to", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    handler = {"serve": cmd_serve, "wait-listening": cmd_wait_listening, "tcp": cmd_tcp, "udp": cmd_udp}
    return handler[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main() or 0)
