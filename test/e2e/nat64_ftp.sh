#!/bin/bash
# FTP through stateful NAT64: an IPv6-only subscriber host fetches and stores files on an
# IPv4-only FTP server (test/e2e/ftp_server.py) with Python's ftplib, which uses EPSV (RFC 2428)
# over IPv6. EPSV needs no FTP helper: the 229 reply carries only a port, and the client connects
# to that port on the address it already uses for the control connection (the server's pool6
# address), which xlat64 translates like any other TCP connection.
#
#   client (subscriber hosts)   router (xlat64d, NAT64 + NAT44)     server (IPv4 only, FTP on :21)
#   2001:db8:100:1::a ── veth ── 2001:db8:1::1   198.51.100.1 ── veth ── 198.51.100.10
#   reaches the server as 2001:db8:64::c633:640a (pool6 2001:db8:64::/96)
#
# Checks: a 2 MB RETR and a 2 MB STOR, SHA-256 verified at both ends; the server saw the control
# and data connections from the subscriber's public address and port block; plain PASV: the 227
# reply's IPv4 address is unusable from the IPv6-only client, only its port is; active mode
# (EPRT |2|) fails, as the IPv4-only server cannot reach an IPv6 address and xlat64 has no FTP ALG
# (RFC 6384); then with the operator's own conntrack helper assignment (the README's nft snippet)
# the EPSV transfers still work, conntrack shows helper=ftp, and what the helper changes is
# recorded: its expectation NATs the data connections itself (nf_nat_follow_master), so xlat64's
# SNAT rule never sees them: they leave from the right public address but from ports outside the
# subscriber's block, and the block's session counter counts only the control connection.
source "$(dirname "$0")/lib.sh"

SERVER6=2001:db8:64::c633:640a # 198.51.100.10 in pool6
HOST=2001:db8:100:1::a         # a host of subscriber 2001:db8:100:1::/64
FTP_ROOT=$E2E_TMP/ftp-root
FTP_LOG=$E2E_TMP/ftp-events.txt
CLIENT_DIR=$E2E_TMP/ftp-client
mkdir -p "$FTP_ROOT" "$CLIENT_DIR"

nat64_lab
write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
nat64:
  prefixes: [2001:db8:100::/58]
  subscriber_length: 64
  hosts_per_subscriber: 4
  public_prefixes: [203.0.113.0/30]
  block_size: 2048
  mode: deterministic
YAML
start_daemon "$E2E_TMP/xlat64.yaml"

# The FTP server, IPv4 only, in the server namespace.
ip netns exec "$SERVER" "$PYTHON" "$E2E_DIR/ftp_server.py" --bind 198.51.100.10 --port 21 \
	--root "$FTP_ROOT" --log "$FTP_LOG" --ready "$E2E_TMP/ftp.ready" >"$E2E_TMP/ftp-server.log" 2>&1 &
E2E_PIDS+=("$!")
for _ in $(seq 50); do [[ -e $E2E_TMP/ftp.ready ]] && break; sleep 0.1; done
[[ -e $E2E_TMP/ftp.ready ]] || fail "the FTP server did not start: $(cat "$E2E_TMP/ftp-server.log")"

head -c 2097152 /dev/urandom >"$FTP_ROOT/download.bin"
head -c 2097152 /dev/urandom >"$CLIENT_DIR/upload.bin"

# ftp_client MODE [ARGS]: Python's ftplib in the client namespace, from $HOST to the server's
# pool6 address. Modes:
#   transfer TAG    RETR download.bin and STOR upload.bin as TAG-upload.bin through EPSV, which
#                   ftplib uses by itself over IPv6; SHA-256 of both checked against the local
#                   files (the server's own log is checked separately).
#   pasv            PASV by hand; prints the 227 reply, tries the IPv4 address it names (must
#                   fail: the client has no IPv4), then RETRs through the same port at the
#                   control connection's address.
#   eprt            active mode: a listening socket on $HOST, EPRT |2|HOST|port|, RETR; prints
#                   the server's reply and whether anything connected.
ftp_client() {
	in_ns "$CLIENT" "$PYTHON" - "$SERVER6" "$HOST" "$FTP_ROOT" "$CLIENT_DIR" "$@" <<'PY'
import ftplib, hashlib, os, socket, sys
server, host, root, local, mode = sys.argv[1:6]
args = sys.argv[6:]

def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()

ftp = ftplib.FTP(timeout=10)
ftp.connect(server, 21, source_address=(host, 0))
ftp.login()  # anonymous
ftp.voidcmd("TYPE I")
print("control connection", ftp.sock.getsockname()[:2], "->", ftp.sock.getpeername()[:2])

if mode == "transfer":
    tag = args[0]
    want = os.path.getsize(os.path.join(root, "download.bin"))
    if ftp.size("download.bin") != want:
        sys.exit("SIZE disagrees with the file")
    got = os.path.join(local, f"{tag}-download.bin")
    with open(got, "wb") as f:
        ftp.retrbinary("RETR download.bin", f.write)
    if os.path.getsize(got) != want or sha(got) != sha(os.path.join(root, "download.bin")):
        sys.exit(f"RETR: {os.path.getsize(got)} bytes, content differs")
    print(f"RETR download.bin: {want} bytes, sha256 {sha(got)[:16]}... matches")
    with open(os.path.join(local, "upload.bin"), "rb") as f:
        ftp.storbinary(f"STOR {tag}-upload.bin", f)
    size = ftp.size(f"{tag}-upload.bin")
    if size != os.path.getsize(os.path.join(local, "upload.bin")):
        sys.exit(f"STOR: the server has {size} bytes")
    print(f"STOR {tag}-upload.bin: {size} bytes")
elif mode == "pasv":
    reply = ftp.sendcmd("PASV")
    print("PASV ->", reply)
    address, port = ftplib.parse227(reply)
    try:
        socket.create_connection((address, port), timeout=3).close()
        sys.exit(f"the client reached {address}:{port}, an IPv4 address, without IPv4")
    except OSError as e:
        print(f"connect to the 227 address {address} port {port}: {e}")
    conn = socket.create_connection((server, port), timeout=5, source_address=(host, 0))
    ftp.sendcmd("RETR download.bin")  # 150
    digest, total = hashlib.sha256(), 0
    with conn:
        while chunk := conn.recv(65536):
            digest.update(chunk)
            total += len(chunk)
    ftp.voidresp()  # 226
    if digest.hexdigest() != sha(os.path.join(root, "download.bin")):
        sys.exit("PASV RETR: content differs")
    print(f"RETR through the 227 port at [{server}]: {total} bytes, sha256 matches")
elif mode == "eprt":
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(1)
    listener.settimeout(1)
    port = listener.getsockname()[1]
    print("EPRT ->", ftp.sendcmd(f"EPRT |2|{host}|{port}|"))
    try:
        print("RETR ->", ftp.sendcmd("RETR download.bin"))
    except ftplib.error_temp as e:
        print("RETR ->", e)
    try:
        listener.accept()
        print("data connection: accepted")
    except socket.timeout:
        print("data connection: none")
ftp.quit()
PY
}

# The subscriber's public address and port block, from the CLI.
ctl subscriber show "$HOST" --json >"$E2E_TMP/subscriber.json"
block=$($PYTHON -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["public_address"], d["ports"].replace("-", " "), d["internal"])' "$E2E_TMP/subscriber.json")
read -r PUBLIC FIRST LAST INTERNAL <<<"$block"
log "subscriber 2001:db8:100:1::/64: internal $INTERNAL, public address $PUBLIC, ports $FIRST-$LAST"

# nat_sessions: the packets counter of the subscriber's element in xlat64's blocks map, i.e. how
# many connections xlat64's SNAT rule has mapped into its block (it sees each one's first packet).
nat_sessions() {
	in_ns "$E2E_ROUTER" nft list map ip xlat64 blocks |
		sed -n "s|.*${INTERNAL//./\\.} counter packets \([0-9]*\) .*|\1|p"
}
# sessions_grew BEFORE N: the counter went up by exactly N.
sessions_grew() {
	local now
	now=$(nat_sessions)
	log "xlat64 NAT sessions of $INTERNAL: $1 -> $now"
	test -n "$now" && test "$((now - $1))" -eq "$2"
}

# check_server_log TAG FROM_LINE IN_BLOCK: the server's events from line FROM_LINE on: both
# transfers recorded with the right sizes and SHA-256, and every control and data connection from
# $PUBLIC. IN_BLOCK=yes: all their ports in the subscriber's block; no: at least one data
# connection's port outside it (printed).
check_server_log() {
	tail -n "+$2" "$FTP_LOG" | $PYTHON -c '
import hashlib, sys
tag, in_block, root, local, public, first, last = sys.argv[1:8]
first, last = int(first), int(last)
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
lines = [l.split() for l in sys.stdin if l.strip()]
want = {("RETR", "download.bin", "2097152", sha(f"{root}/download.bin")),
        ("STOR", f"{tag}-upload.bin", "2097152", sha(f"{local}/upload.bin"))}
seen = {tuple(l) for l in lines if l[0] in ("RETR", "STOR")}
if not want <= seen:
    sys.exit(f"transfers on the server: {sorted(seen)}, expected {sorted(want)}")
peers = [(kind, addr, int(port)) for kind, addr, port in (l for l in lines if l[0] in ("control", "data"))]
data = [p for p in peers if p[0] == "data"]
print("server saw:", " ".join(f"{k} {a}:{p}" for k, a, p in peers))
if len(data) < 2 or any(a != public for _, a, _ in peers):
    sys.exit(f"expected the control and 2+ data connections from {public}")
outside = [p for p in peers if not first <= p[2] <= last]
if in_block == "yes" and outside:
    sys.exit(f"outside the block {first}-{last}: {outside}")
if in_block == "no" and not [p for p in outside if p[0] == "data"]:
    sys.exit(f"every data connection was inside the block {first}-{last}")
' "$1" "$3" "$FTP_ROOT" "$CLIENT_DIR" "$PUBLIC" "$FIRST" "$LAST"
}

# 1. EPSV, no helper anywhere: xlat64 translates the control and data connections as two plain
#    TCP connections, each NATed into the subscriber's block by xlat64's own nft rules.
sessions=$(nat_sessions)
expect "EPSV: RETR and STOR of 2 MB each through NAT64, SHA-256 verified" ftp_client transfer epsv
expect "xlat64's SNAT rule mapped 3 connections (control + 2 data) into the block" \
	sessions_grew "$sessions" 3
expect "the server saw the control and data connections from $PUBLIC, ports in $FIRST-$LAST" \
	check_server_log epsv 1 yes
in_ns "$E2E_ROUTER" conntrack -L -p tcp >"$E2E_TMP/conntrack-plain.txt" 2>/dev/null
no_helper() {
	grep -q 'src=100\.64\.[0-9.]* dst=198\.51\.100\.10 sport=[0-9]* dport=21 ' "$1" && ! grep -q helper= "$1"
}
expect "conntrack lists the FTP control connection, with no helper (xlat64 assigns none)" \
	no_helper "$E2E_TMP/conntrack-plain.txt"

# 2. Plain PASV (RFC 959): the 227 reply names the server's own IPv4 address, 198.51.100.10, which
#    the IPv6-only client cannot reach (no IPv4 address or route; nothing in NAT64 rewrites FTP
#    payloads). Only a client that ignores the 227 address and reuses the control connection's
#    address (curl's default, --ftp-skip-pasv-ip; ftplib does so for IPv4 sessions only) gets
#    through, because the port alone is all that is needed.
ftp_client pasv >"$E2E_TMP/pasv.out" 2>&1 || true
cat "$E2E_TMP/pasv.out"
expect "PASV: the 227 reply carries the server's IPv4 address" \
	grep -q '^PASV -> 227 .*(198,51,100,10,' "$E2E_TMP/pasv.out"
expect "PASV: connecting to that IPv4 address from the IPv6-only client fails" \
	grep -q '^connect to the 227 address 198.51.100.10 port .*unreachable' "$E2E_TMP/pasv.out"
expect "PASV: the 227 port at the pool6 address works (a client that ignores the 227 address)" \
	grep -q '^RETR through the 227 port .*sha256 matches' "$E2E_TMP/pasv.out"

# 3. Active mode from an IPv6 client: EPRT |2|2001:db8:100:1::a|port| reaches the IPv4-only server
#    unchanged (no FTP ALG, RFC 6384, in xlat64); the server cannot connect to an IPv6 address
#    (and the host behind NAT64 is not reachable from IPv4 without a mapping anyway).
ftp_client eprt >"$E2E_TMP/eprt.out" 2>&1 || true
cat "$E2E_TMP/eprt.out"
expect "EPRT |2|: the server got the subscriber's IPv6 address, unchanged, and could not connect" \
	grep -q "^active $HOST [0-9]* failed" "$FTP_LOG"
expect "EPRT |2|: RETR is answered 425 and no data connection reaches the client" \
	sh -c "grep -q '^RETR -> 425' '$E2E_TMP/eprt.out' && grep -q '^data connection: none' '$E2E_TMP/eprt.out'"

# 4. The README's conntrack helper snippet, in the operator's own table (kernels >= 4.7 assign no
#    helper by themselves; 6.0 removed the nf_conntrack_helper toggle altogether).
in_ns "$E2E_ROUTER" nft -f - <<'NFT'
table inet operator-owned {
	ct helper ftp-standard {
		type "ftp" protocol tcp
	}
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		ip saddr 100.64.0.0/10 tcp dport 21 ct helper set "ftp-standard"
	}
}
NFT
in_ns "$E2E_ROUTER" nft list table inet operator-owned
in_ns "$E2E_ROUTER" conntrack -F >/dev/null 2>&1 || true
from=$(($(wc -l <"$FTP_LOG") + 1))
sessions=$(nat_sessions)
expect "with the ftp helper: EPSV RETR and STOR of 2 MB each, SHA-256 verified" \
	ftp_client transfer helper
in_ns "$E2E_ROUTER" conntrack -L -p tcp 2>/dev/null | tee "$E2E_TMP/conntrack.txt"
expect "conntrack shows helper=ftp on the control connection (100.64.x.y -> 198.51.100.10:21)" \
	grep -q 'src=100\.64\.[0-9.]* dst=198\.51\.100\.10 sport=[0-9]* dport=21 .*helper=ftp' \
	"$E2E_TMP/conntrack.txt"
# What the helper changes: the data connections match the expectation it creates from the 229
# reply, and nf_nat_follow_master NATs them to the control connection's public address, keeping
# the internal source port when it is free. xlat64's postrouting SNAT rule (port block, session
# limit) is never consulted for them. So they still come from $PUBLIC, but from ports outside the
# subscriber's block: in deterministic mode (RFC 7422) those ports belong to other subscribers.
expect "with the helper, the data connections bypass xlat64's port block (same public address)" \
	check_server_log helper "$from" no
expect "with the helper, xlat64's SNAT rule mapped only the control connection" \
	sessions_grew "$sessions" 1

stop_daemon
