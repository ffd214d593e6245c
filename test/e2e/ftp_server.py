#!/usr/bin/python3
"""A small FTP server for the e2e tests (RFC 959 with RFC 2428 EPSV/EPRT), standard library only.

    ftp_server.py --bind ADDRESS --port PORT --root DIR --log FILE [--ready FILE]

Anonymous (any USER and PASS is accepted), binary only; one data connection per transfer.
Commands: USER PASS SYST FEAT TYPE PWD NOOP SIZE EPSV PASV EPRT PORT RETR STOR QUIT.
The log gets one line per event, for the test to check:
    control ADDRESS PORT                   a control connection was accepted from that peer
    data ADDRESS PORT                      a passive data connection was accepted from that peer
    active ADDRESS PORT ok|failed: ERROR   the server's own connection for EPRT/PORT
    RETR|STOR NAME BYTES SHA256            a completed transfer
"""
import argparse
import hashlib
import os
import socket
import socketserver
import sys
import threading

DATA_TIMEOUT = 5


class Session(socketserver.StreamRequestHandler):
    timeout = 30

    def log(self, line):
        with self.server.log_lock, open(self.server.log_path, "a") as f:
            f.write(line + "\n")

    def reply(self, text):
        self.wfile.write((text + "\r\n").encode())
        self.wfile.flush()

    def handle(self):
        peer = self.connection.getpeername()
        self.log(f"control {peer[0]} {peer[1]}")
        self.passive = None  # a listening socket after EPSV/PASV
        self.active = None  # (family, address, port) after EPRT/PORT
        self.reply("220 xlat64 e2e FTP server")
        while True:
            line = self.rfile.readline()
            if not line:
                break
            line = line.decode("latin-1").rstrip("\r\n")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            handler = getattr(self, "do_" + verb, None)
            if handler is None:
                self.reply(f"502 {verb} not implemented")
                continue
            if handler(arg) is False:
                break
        self.close_passive()

    def close_passive(self):
        if self.passive is not None:
            self.passive.close()
            self.passive = None

    def path(self, name):
        name = os.path.basename(name)  # one flat directory, nothing outside it
        return os.path.join(self.server.root, name) if name else None

    # --- login and trivia ---
    def do_USER(self, arg):
        self.reply("331 any password will do")

    def do_PASS(self, arg):
        self.reply("230 logged in")

    def do_SYST(self, arg):
        self.reply("215 UNIX Type: L8")

    def do_FEAT(self, arg):
        self.wfile.write(b"211-Features:\r\n EPSV\r\n EPRT\r\n SIZE\r\n211 End\r\n")
        self.wfile.flush()

    def do_TYPE(self, arg):
        if arg.upper().startswith("I"):
            self.reply("200 binary")
        else:
            self.reply("504 binary (TYPE I) only")

    def do_PWD(self, arg):
        self.reply('257 "/"')

    def do_NOOP(self, arg):
        self.reply("200 ok")

    def do_QUIT(self, arg):
        self.reply("221 bye")
        return False

    def do_SIZE(self, arg):
        p = self.path(arg)
        if p and os.path.isfile(p):
            self.reply(f"213 {os.path.getsize(p)}")
        else:
            self.reply("550 no such file")

    # --- data connection set-up ---
    def listen(self):
        self.close_passive()
        self.active = None
        local = self.connection.getsockname()[0]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((local, 0))
        s.listen(1)
        s.settimeout(DATA_TIMEOUT)
        self.passive = s
        return local, s.getsockname()[1]

    def do_EPSV(self, arg):
        if arg and arg.upper() != "ALL" and arg != "1":
            self.reply("522 network protocol not supported, use (1)")
            return
        _, port = self.listen()
        self.reply(f"229 Entering Extended Passive Mode (|||{port}|)")

    def do_PASV(self, arg):
        address, port = self.listen()
        h = address.replace(".", ",")
        self.reply(f"227 Entering Passive Mode ({h},{port >> 8},{port & 255})")

    def do_EPRT(self, arg):
        # |1|192.0.2.1|6446| or |2|2001:db8::1|6446| (RFC 2428, section 2). The server does not
        # refuse protocol 2 itself: it tries, as a dual-stack server would, and reports the
        # outcome of its connect() when the transfer starts.
        parts = arg.split(arg[:1]) if arg else []
        if len(parts) != 5 or parts[1] not in ("1", "2") or not parts[3].isdigit():
            self.reply("501 bad EPRT argument")
            return
        self.close_passive()
        family = socket.AF_INET if parts[1] == "1" else socket.AF_INET6
        self.active = (family, parts[2], int(parts[3]))
        self.reply("200 EPRT ok")

    def do_PORT(self, arg):
        fields = arg.split(",")
        if len(fields) != 6 or not all(f.strip().isdigit() for f in fields):
            self.reply("501 bad PORT argument")
            return
        self.close_passive()
        n = [int(f) for f in fields]
        self.active = (socket.AF_INET, ".".join(map(str, n[:4])), n[4] * 256 + n[5])
        self.reply("200 PORT ok")

    def open_data(self):
        """The data connection for one transfer, or None after a 425 reply."""
        if self.passive is not None:
            s, self.passive = self.passive, None
            try:
                conn, peer = s.accept()
            except OSError as e:
                self.reply(f"425 no data connection: {e}")
                return None
            finally:
                s.close()
            self.log(f"data {peer[0]} {peer[1]}")
            return conn
        if self.active is not None:
            family, address, port = self.active
            self.active = None
            try:
                conn = socket.create_connection((address, port), timeout=DATA_TIMEOUT) \
                    if family == socket.AF_INET else self.connect6(address, port)
            except OSError as e:
                self.log(f"active {address} {port} failed: {e}")
                self.reply(f"425 cannot open data connection to {address} port {port}: {e}")
                return None
            self.log(f"active {address} {port} ok")
            return conn
        self.reply("425 use EPSV, PASV, EPRT or PORT first")
        return None

    @staticmethod
    def connect6(address, port):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.settimeout(DATA_TIMEOUT)
        try:
            s.connect((address, port))
        except OSError:
            s.close()
            raise
        return s

    # --- transfers ---
    def do_RETR(self, arg):
        p = self.path(arg)
        if not p or not os.path.isfile(p):
            self.reply("550 no such file")
            return
        conn = self.open_data()
        if conn is None:
            return
        self.reply("150 opening data connection")
        digest, total = hashlib.sha256(), 0
        with conn, open(p, "rb") as f:
            while chunk := f.read(65536):
                conn.sendall(chunk)
                digest.update(chunk)
                total += len(chunk)
        self.log(f"RETR {os.path.basename(p)} {total} {digest.hexdigest()}")
        self.reply("226 transfer complete")

    def do_STOR(self, arg):
        p = self.path(arg)
        if not p:
            self.reply("553 bad file name")
            return
        conn = self.open_data()
        if conn is None:
            return
        self.reply("150 opening data connection")
        digest, total = hashlib.sha256(), 0
        conn.settimeout(DATA_TIMEOUT)
        with conn, open(p, "wb") as f:
            while chunk := conn.recv(65536):
                f.write(chunk)
                digest.update(chunk)
                total += len(chunk)
        self.log(f"STOR {os.path.basename(p)} {total} {digest.hexdigest()}")
        self.reply("226 transfer complete")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=21)
    ap.add_argument("--root", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready", help="created once the server listens")
    a = ap.parse_args()
    server = Server((a.bind, a.port), Session)
    server.root, server.log_path, server.log_lock = a.root, a.log, threading.Lock()
    if a.ready:
        open(a.ready, "w").close()
    print(f"FTP server on {a.bind} port {a.port}, root {a.root}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
