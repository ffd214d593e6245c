#!/usr/bin/python3
"""New TCP connections per second, the same tool for every mode of the data-plane benchmark.

Only the standard library (Debian's python3).

  cps.py serve --port P
      Dual-stack (IPv4 and IPv6) listener on P: accepts each connection and closes it at once, so
      the server does the active close (its TIME_WAIT, not the client's).
  cps.py wait-listening --to ADDR --port P
      Waits (up to 10 s) until ADDR:P accepts a connection.
  cps.py run --to ADDR --port P --seconds S [--concurrency C] [--source ADDR]
      Keeps C connections in flight for S seconds. One connection = SYN, SYN-ACK, ACK, the
      server's FIN, the client's FIN: it counts once the client has seen the server's FIN (the
      end-of-file), then the client closes (passive close: no TIME_WAIT on the client) and opens
      the next. Prints JSON: {"connections": N, "seconds": T, "cps": N/T, "errors": E}.
"""

import argparse
import errno
import json
import selectors
import socket
import sys
import time


# <linux/in.h>; Python's socket module names it only in recent versions.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def serve(args):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", args.port))
    s.listen(4096)
    while True:
        try:
            c, _ = s.accept()
        except OSError:
            continue
        c.close()


def wait_listening(args):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((args.to, args.port), timeout=1).close()
            return 0
        except OSError:
            time.sleep(0.1)
    return 1


def run(args):
    family = family_of(args.to)
    sel = selectors.DefaultSelector()
    done = errors = 0
    start = time.monotonic()
    end = start + args.seconds

    def open_one():
        nonlocal errors
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        if args.source:
            # The address only: connect() then picks the port as it does without bind(), so a
            # mode that names its source pays no extra port search (bind(addr, 0) alone would
            # search the bind table for a free port at every connection).
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((args.source, 0))
        rc = s.connect_ex((args.to, args.port))
        if rc not in (0, errno.EINPROGRESS):
            errors += 1
            s.close()
            return False
        sel.register(s, selectors.EVENT_READ, time.monotonic())
        return True

    for _ in range(args.concurrency):
        open_one()
    while True:
        now = time.monotonic()
        if now >= end:
            break
        for key, _ in sel.select(timeout=min(0.5, end - now)):
            s = key.fileobj
            sel.unregister(s)
            try:
                data = s.recv(16)
            except OSError:
                data = None
            if data == b"":
                done += 1
            else:
                errors += 1
            s.close()
            open_one()
        # A connection stuck for 3 s (a lost SYN waits 1 s for its retransmission) is given up
        # and counted as an error, so a lossy mode cannot stall the loop.
        now = time.monotonic()
        for key in list(sel.get_map().values()):
            if now - key.data > 3:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                errors += 1
                open_one()
    elapsed = time.monotonic() - start
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    print(json.dumps({"connections": done, "seconds": round(elapsed, 3),
                      "cps": round(done / elapsed, 1), "errors": errors}))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("serve")
    a.add_argument("--port", type=int, required=True)
    a = sub.add_parser("wait-listening")
    a.add_argument("--to", required=True)
    a.add_argument("--port", type=int, required=True)
    a = sub.add_parser("run")
    a.add_argument("--to", required=True)
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--seconds", type=float, required=True)
    a.add_argument("--concurrency", type=int, default=32)
    a.add_argument("--source")
    args = p.parse_args()
    return {"serve": serve, "wait-listening": wait_listening, "run": run}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
