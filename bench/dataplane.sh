#!/bin/bash
# Data-plane benchmark (issue 7): five ways of getting a client's packets to a server, measured
# side by side on ONE network-namespace topology, in one run, each against its own limit:
#
#   ipv6-forward  plain IPv6 forwarding                     (the limit of tayga and siit)
#   nat44         plain IPv4 forwarding + nftables snat      (the limit of nat64)
#   tayga         TAYGA (Debian's package), its own tun device, pool6 + a static map
#   siit          xlat64 SIIT: pool6 + an EAM entry for the client
#   nat64         xlat64 stateful NAT64, the client a subscriber host
#   siit-ingress  siit, translating at the router's interfaces' ingress (translation.ingress_interfaces)
#   nat64-ingress nat64, the same
#
#   client                                router                                  server
#   2001:db8:1::2/64  ── veth ── 2001:db8:1::1/64        2001:db8:2::1/64 ── veth ── 2001:db8:2::2/64
#   192.0.2.2/24      (eth0/to-client)   192.0.2.1/24    198.51.100.1/24 (to-server/eth0) 198.51.100.10/24
#   2001:db8:100:1::a/128 (NAT64 subscriber host; the router routes 2001:db8:100::/56 to the client)
#
# Figures per mode: UDP packets per second received by the server (64-byte payloads, iperf3 -u
# -b 0), TCP throughput client->server ("up", IPv6->IPv4 for the translators) and server->client
# ("down", iperf3 -R), and new TCP connections per second (bench/cps.c). Each figure is the
# median of --runs runs; the runs are interleaved (run 1 of every mode, then run 2, ...) so that
# drift and other load on the machine hit every mode alike.
#
# Usage (root): dataplane.sh [--smoke] [--runs N] [--seconds S] [--modes a,b,...] [--output FILE]
#   --smoke    every mode for ~1 s, once; fails (exit 1) if a mode moved no traffic in a figure.
#   --profile DIR  also record a system-wide perf profile (perf record -a -g) during the UDP, the
#              TCP-up and the connection test of each mode and run: DIR/MODE-runN-FIGURE.txt
#              (perf report by symbol, and by command and symbol; for UDP and connections also
#              the time per packet or connection by stage of the path, bench/perf_stages.py),
#              plus the nanoseconds per run of each xlat64 program (bench/prog_stats.py); at the
#              end DIR/stages.txt, each stage's median over the runs (bench/stage_summary.py).
# Environment: XLAT64D, XLAT64CTL, XLAT64_CPS (binaries, required; XLAT64_CPS is bench/cps.c, the
# target xlat64-cps of the build), PYTHON (default /usr/bin/python3).
#
# Network safety: traffic only between the namespaces created here, on documentation prefixes;
# nothing is sent from the root namespace. Namespaces, devices, pins and processes (by PID) are
# removed on exit, whether the run succeeded or not.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
XLAT64D=${XLAT64D:?set XLAT64D to the xlat64d binary}
XLAT64CTL=${XLAT64CTL:?set XLAT64CTL to the xlat64ctl binary}
XLAT64_CPS=${XLAT64_CPS:?set XLAT64_CPS to the xlat64-cps binary (bench/cps.c)}
PYTHON=${PYTHON:-/usr/bin/python3}

SMOKE=0
RUNS=3
SECONDS_PER_TEST=5
MODES=ipv6-forward,nat44,tayga,siit,nat64,siit-ingress,nat64-ingress
OUTPUT=
PROFILE_DIR=
while (($#)); do
	case $1 in
	--smoke) SMOKE=1 ;;
	--runs) RUNS=$2; shift ;;
	--seconds) SECONDS_PER_TEST=$2; shift ;;
	--modes) MODES=$2; shift ;;
	--output) OUTPUT=$2; shift ;;
	--profile) PROFILE_DIR=$(realpath -m "$2"); shift ;;
	-h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "dataplane.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
if ((SMOKE)); then
	RUNS=1
	SECONDS_PER_TEST=1
fi
IFS=, read -r -a MODE_LIST <<<"$MODES"

ID=$(printf '%04x' $((RANDOM)))
TMP=$(mktemp -d "/tmp/xlat64-bench-$ID.XXXX")
RAW=$TMP/raw.jsonl
PIN_DIR=/sys/fs/bpf/xlat64-bench-$ID
SOCKET=$TMP/control.sock
CLIENT=xb-$ID-client
ROUTER=xb-$ID-router
SERVER=xb-$ID-server
NAMESPACES=()
PIDS=()         # every process started here that may still run, by PID
DAEMON_PID=
DAEMON_CONFIG=  # set while xlat64d's kernel state may exist (teardown needs the config)
TAYGA_PID=

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

in_ns() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}
# xlat64d and xlat64ctl run with nsenter --net, not ip netns exec: ip netns exec remounts /sys
# in a private mount namespace, which would hide the bpffs where the maps are pinned.
in_router() { nsenter --net="/run/netns/$ROUTER" "$@"; }
ctl() { in_router "$XLAT64CTL" --socket "$SOCKET" "$@"; }

forget_pid() {
	local keep=() p
	for p in "${PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

cleanup() {
	local rc=$?
	set +e
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	if [[ -n $DAEMON_CONFIG && -e /run/netns/$ROUTER ]]; then
		in_router "$XLAT64D" --config "$DAEMON_CONFIG" --teardown >/dev/null 2>&1
	fi
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	if [[ -d $PIN_DIR ]]; then
		rm -f "$PIN_DIR"/xlat_* && rmdir "$PIN_DIR"
	fi
	if ((rc != 0)); then
		for f in "$TMP"/*.log; do
			[[ -f $f ]] && { echo "--- $f"; tail -n 30 "$f"; } >&2
		done
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Topology ------------------------------------------------------------------------------------

new_ns() {
	ip netns add "$1"
	NAMESPACES+=("$1")
	ip -n "$1" link set lo up
	in_ns "$1" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# A veth pair created directly inside the two namespaces: the root namespace never sees it.
# Offloads (GRO/GSO/TSO) stay at the kernel's defaults.
link_ns() {
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

topology() {
	new_ns "$CLIENT"
	new_ns "$ROUTER"
	new_ns "$SERVER"
	link_ns "$CLIENT" eth0 "$ROUTER" to-client
	link_ns "$ROUTER" to-server "$SERVER" eth0
	in_ns "$ROUTER" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	# The connection-rate test opens tens of thousands of connections: let the client use every
	# port, and let the router's conntrack forget closed connections after 2 s instead of 120 s
	# (NAT44 and NAT64 alike), so neither the table nor the NAT port ranges fill up with TIME_WAIT
	# entries within the run. Per network namespace: nothing outside the benchmark changes.
	in_ns "$CLIENT" sysctl -q -w net.ipv4.ip_local_port_range="1024 65535"
	modprobe nf_conntrack 2>/dev/null || true
	in_ns "$ROUTER" sysctl -q -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=2 \
		net.netfilter.nf_conntrack_tcp_timeout_close=2 2>/dev/null ||
		log "note: could not shorten conntrack timeouts in the router"

	ip -n "$CLIENT" addr add 2001:db8:1::2/64 dev eth0 nodad
	ip -n "$CLIENT" addr add 2001:db8:100:1::a/128 dev eth0 nodad
	ip -n "$CLIENT" addr add 192.0.2.2/24 dev eth0
	ip -n "$CLIENT" route add default via 2001:db8:1::1
	ip -n "$CLIENT" route add default via 192.0.2.1

	ip -n "$ROUTER" addr add 2001:db8:1::1/64 dev to-client nodad
	ip -n "$ROUTER" addr add 192.0.2.1/24 dev to-client
	ip -n "$ROUTER" route add 2001:db8:100::/56 via 2001:db8:1::2
	ip -n "$ROUTER" addr add 2001:db8:2::1/64 dev to-server nodad
	ip -n "$ROUTER" addr add 198.51.100.1/24 dev to-server

	ip -n "$SERVER" addr add 2001:db8:2::2/64 dev eth0 nodad
	ip -n "$SERVER" addr add 198.51.100.10/24 dev eth0
	ip -n "$SERVER" route add default via 2001:db8:2::1
	ip -n "$SERVER" route add default via 198.51.100.1
}

start_servers() {
	# ip netns exec execs the command: $! is the server's own PID.
	ip netns exec "$SERVER" iperf3 -s >"$TMP/iperf3-server.log" 2>&1 &
	PIDS+=("$!")
	ip netns exec "$SERVER" "$XLAT64_CPS" serve --port 9000 >"$TMP/cps-server.log" 2>&1 &
	PIDS+=("$!")
	in_ns "$SERVER" "$XLAT64_CPS" wait-listening --to 198.51.100.10 --port 9000 ||
		die "the connection server did not start"
	for _ in $(seq 50); do
		in_ns "$SERVER" ss -Hltn 'sport = :5201' | grep -q . && return 0
		sleep 0.1
	done
	die "iperf3 -s did not start: $(cat "$TMP/iperf3-server.log")"
}

# --- Modes: setup_MODE sets DEST and SOURCE (the client's address) in this shell; teardown_MODE
# undoes it. Every mode names its source, so every client binds one (iperf3 -B, and xlat64-cps
# with IP_BIND_ADDRESS_NO_PORT): the clients do the same system calls in every mode. -------------

SERVER_VIA_POOL6=2001:db8:64::c633:640a # 198.51.100.10 in pool6 2001:db8:64::/96 (RFC 6052)

setup_ipv6-forward() { DEST=2001:db8:2::2 SOURCE=2001:db8:1::2; }
teardown_ipv6-forward() { :; }

setup_nat44() {
	in_ns "$ROUTER" nft -f - <<-'NFT'
		table ip bench_nat44 {
			chain postrouting {
				type nat hook postrouting priority srcnat; policy accept;
				oifname "to-server" ip saddr 192.0.2.0/24 snat to 203.0.113.8
			}
		}
	NFT
	DEST=198.51.100.10
	SOURCE=192.0.2.2
}
teardown_nat44() { in_ns "$ROUTER" nft delete table ip bench_nat44; }

setup_tayga() {
	cat >"$TMP/tayga.conf" <<-'EOF'
		tun-device bench-tayga
		ipv4-addr 203.0.113.254
		prefix 2001:db8:64::/96
		map 203.0.113.130 2001:db8:1::2
	EOF
	ip netns exec "$ROUTER" tayga --config "$TMP/tayga.conf" --nodetach >>"$TMP/tayga.log" 2>&1 &
	TAYGA_PID=$!
	PIDS+=("$TAYGA_PID")
	for _ in $(seq 50); do
		ip -n "$ROUTER" link show bench-tayga >/dev/null 2>&1 && break
		kill -0 "$TAYGA_PID" 2>/dev/null || die "tayga exited: $(cat "$TMP/tayga.log")"
		sleep 0.1
	done
	ip -n "$ROUTER" link set bench-tayga up
	ip -n "$ROUTER" route add 2001:db8:64::/96 dev bench-tayga
	ip -n "$ROUTER" route add 203.0.113.128/25 dev bench-tayga
	DEST=$SERVER_VIA_POOL6
	SOURCE=2001:db8:1::2
}
teardown_tayga() {
	# TAYGA's tun device is not persistent: it goes (with its routes) when TAYGA exits.
	kill "$TAYGA_PID"
	wait "$TAYGA_PID" 2>/dev/null || true
	forget_pid "$TAYGA_PID"
	TAYGA_PID=
}

# start_daemon NAME [INGRESS]: xlat64d in the router from $TMP/NAME.yaml (pin dir, socket and a
# state directory of this run appended), like test/e2e/lib.sh's start_daemon; with INGRESS, it
# translates at the ingress of both of the router's interfaces too.
start_daemon() {
	local config=$TMP/$1.yaml ingress=${2:-}
	cat >>"$config" <<-EOF
		translation:
		  lowest_ipv6_mtu: 1500
		  ingress_interfaces: [${ingress:+to-client, to-server}]
		control:
		  socket: $SOCKET
		bpf:
		  pin_dir: $PIN_DIR
		state:
		  directory: $TMP/state-$1
	EOF
	DAEMON_CONFIG=$config
	nsenter --net="/run/netns/$ROUTER" "$XLAT64D" --config "$config" >>"$TMP/xlat64d.log" 2>&1 &
	DAEMON_PID=$!
	PIDS+=("$DAEMON_PID")
	for _ in $(seq 100); do
		ctl status >/dev/null 2>&1 && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || die "xlat64d exited during start-up: $(tail -n 20 "$TMP/xlat64d.log")"
		sleep 0.1
	done
	die "xlat64d did not answer on $SOCKET within 10 s"
}
stop_daemon() {
	kill -TERM "$DAEMON_PID"
	local rc=0
	wait "$DAEMON_PID" || rc=$?
	forget_pid "$DAEMON_PID"
	((rc == 0)) || log "warning: xlat64d exited with status $rc"
	in_router "$XLAT64D" --config "$DAEMON_CONFIG" --teardown >>"$TMP/xlat64d.log" 2>&1 ||
		die "xlat64d --teardown failed: $(tail -n 20 "$TMP/xlat64d.log")"
	DAEMON_CONFIG=
	rm -f "$TMP/$1.yaml"
}

setup_siit() {
	local ingress=${1:-}
	cat >"$TMP/siit.yaml" <<-'YAML'
		pool6: 2001:db8:64::/96
		eamt:
		  - ipv4: 203.0.113.128/25
		    ipv6: 2001:db8:1::/121
	YAML
	start_daemon siit "$ingress"
	DEST=$SERVER_VIA_POOL6
	SOURCE=2001:db8:1::2
}
teardown_siit() { stop_daemon siit; }
setup_siit-ingress() {
	setup_siit ingress
}
teardown_siit-ingress() { teardown_siit; }

setup_nat64() {
	local ingress=${1:-}
	# Four /64 subscribers, one public address each with one block of 32768 ports: the
	# subscriber's port budget is about that of the NAT44 limit (one address, all ports).
	cat >"$TMP/nat64.yaml" <<-'YAML'
		pool6: 2001:db8:64::/96
		nat64:
		  prefixes: [2001:db8:100::/62]
		  subscriber_length: 64
		  hosts_per_subscriber: 1
		  public_prefixes: [203.0.113.0/30]
		  block_size: 32768
		  mode: deterministic
	YAML
	start_daemon nat64 "$ingress"
	DEST=$SERVER_VIA_POOL6
	SOURCE=2001:db8:100:1::a
}
teardown_nat64() { stop_daemon nat64; }
setup_nat64-ingress() {
	setup_nat64 ingress
}
teardown_nat64-ingress() { teardown_nat64; }

# --- Measurements --------------------------------------------------------------------------------

# record MODE RUN FIGURE VALUE [NOTE]: one line of raw results.
record() {
	"$PYTHON" -c 'import json, sys
print(json.dumps({"mode": sys.argv[1], "run": int(sys.argv[2]), "figure": sys.argv[3],
                  "value": float(sys.argv[4]), "note": sys.argv[5]}))' "$@" "${5:-}" >>"$RAW"
}

# iperf3_json FILE EXPRESSION: a number out of iperf3's JSON result (0 when it failed).
iperf3_value() {
	"$PYTHON" - "$1" "$2" <<-'PY'
		import json, sys
		try:
		    r = json.load(open(sys.argv[1]))
		    end = r["end"]
		    print(eval(sys.argv[2], {"end": end}))
		except Exception as e:
		    print(0)
	PY
}

iperf3_error() {
	"$PYTHON" -c 'import json, sys
try: print(json.load(open(sys.argv[1])).get("error", ""))
except Exception as e: print("no JSON result:", e)' "$1"
}

# run_iperf3 NAME ARGS...: the client's iperf3 in the client namespace, JSON into $TMP/NAME.json;
# retried once when the server is still busy with the previous test.
run_iperf3() {
	local name=$1
	shift
	for _ in 1 2 3; do
		timeout $((SECONDS_PER_TEST + 20)) ip netns exec "$CLIENT" iperf3 --connect-timeout 3000 \
			-J "$@" >"$TMP/$name.json" 2>>"$TMP/iperf3-client.log" && return 0
		grep -q 'busy' "$TMP/$name.json" 2>/dev/null || return 1
		sleep 1
	done
	return 1
}

server_rx_packets() {
	ip -n "$SERVER" -s -j link show dev eth0 |
		"$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["packets"])'
}

# profile_start NAME / profile_stop: perf record -a -g for the length of one test (--profile).
profile_start() {
	[[ -n $PROFILE_DIR ]] || return 0
	mkdir -p "$PROFILE_DIR"
	PROFILE_NAME=$1
	perf record -a -g -o "$PROFILE_DIR/$1.data" -- sleep "$SECONDS_PER_TEST" >/dev/null 2>&1 &
	PROFILE_PID=$!
	PIDS+=("$PROFILE_PID")
	# Nanoseconds per run of the xlat64 programs the router runs (bench/prog_stats.py): on the
	# device and, in the ingress modes, at the router's interfaces.
	if [[ -n $DAEMON_CONFIG ]]; then
		local ids
		ids=$(router_prog_ids)
		if [[ -n $ids ]]; then
			# shellcheck disable=SC2086  # one argument per id
			"$PYTHON" "$BENCH_DIR/prog_stats.py" --seconds "$SECONDS_PER_TEST" $ids \
				>"$PROFILE_DIR/$1.progs.txt" 2>&1 &
			PROFILE_BPF_PID=$!
			PIDS+=("$PROFILE_BPF_PID")
		fi
	fi
}
# The ids of the BPF programs in the router's tc filters (xlat64 egress, the interfaces' ingress).
router_prog_ids() {
	local dev dir
	for dev in xlat64 to-client to-server; do
		for dir in egress ingress; do
			in_router tc -j filter show dev "$dev" "$dir" 2>/dev/null || true
		done
	done | "$PYTHON" -c '
import json, sys
def ids(node):
    if isinstance(node, dict):
        if isinstance(node.get("prog"), dict) and "id" in node["prog"]:
            yield node["prog"]["id"]
        for v in node.values():
            yield from ids(v)
    elif isinstance(node, list):
        for v in node:
            yield from ids(v)
found = set()
for line in sys.stdin:
    line = line.strip()
    if line:
        found.update(ids(json.loads(line)))
print(" ".join(str(i) for i in sorted(found)))' 2>/dev/null || true
}
profile_stop() {
	[[ -n $PROFILE_DIR ]] || return 0
	wait "$PROFILE_PID" 2>/dev/null || true
	forget_pid "$PROFILE_PID"
	if [[ -n ${PROFILE_BPF_PID:-} ]]; then
		wait "$PROFILE_BPF_PID" 2>/dev/null || true
		forget_pid "$PROFILE_BPF_PID"
		PROFILE_BPF_PID=
	fi
	local data=$PROFILE_DIR/$PROFILE_NAME.data
	# A report that perf cannot produce (a sample it fails to parse) leaves its section empty
	# rather than ending the benchmark. The third section keeps only the benchmark's own
	# processes and the softirq threads, where the forwarding runs: on a shared machine the
	# system-wide view also holds everyone else's work.
	{
		echo "== by symbol (all CPUs, no children)"
		perf report -i "$data" --stdio --no-children --sort sym --percent-limit 0.7 -g none 2>/dev/null | grep -v '^#' | grep . || true
		echo "== by command and symbol"
		perf report -i "$data" --stdio --no-children --sort comm,sym --percent-limit 1 -g none 2>/dev/null | grep -v '^#' | grep . || true
		echo "== the benchmark's processes and softirq threads only, by symbol"
		perf report -i "$data" --stdio --no-children --comms iperf3,xlat64-cps,ksoftirqd/0,ksoftirqd/1,swapper \
			--sort sym --percent-limit 0.5 -g none 2>/dev/null | grep -v '^#' | grep . || true
		if [[ -f $PROFILE_DIR/$PROFILE_NAME.progs.txt ]]; then
			echo "== xlat64's BPF programs, nanoseconds per run (bench/prog_stats.py)"
			cat "$PROFILE_DIR/$PROFILE_NAME.progs.txt"
		fi
	} >"$PROFILE_DIR/$PROFILE_NAME.txt"
	rm -f "$PROFILE_DIR/$PROFILE_NAME.progs.txt"
}

# profile_stages NAME COUNT UNIT COMM ROOT [ARGS...]: appends to NAME's report the time per packet (or
# connection) by stage of the path (bench/perf_stages.py): unlike the rates, it does not depend on
# how much of the machine the test got.
profile_stages() {
	[[ -n $PROFILE_DIR ]] || return 0
	{
		echo "== per $3, by stage of the path (bench/perf_stages.py)"
		"$PYTHON" "$BENCH_DIR/perf_stages.py" --data "$PROFILE_DIR/$1.data" --count "$2" \
			--unit "$3" --comm "$4" --root "$5" "${@:6}" 2>&1 || true
	} >>"$PROFILE_DIR/$1.txt"
}

measure() {
	local mode=$1 run=$2 dest=$3 source=${4:-}
	local bind=() cps_source=() omit=()
	[[ -n $source ]] && bind=(-B "$source") && cps_source=(--source "$source")
	((SMOKE)) || omit=(-O 1)
	local t=$SECONDS_PER_TEST value

	# UDP, 64-byte payloads, as fast as the sender goes: the packets the router delivered to the
	# server per second, counted by the server's interface (a veth counts a packet received once
	# it is queued for the server's stack). Not by the iperf3 server: one receiving process that
	# reads one datagram per system call is slower than the path and would measure itself; what
	# it got goes into the note.
	local rx_before rx_after
	rx_before=$(server_rx_packets)
	profile_start "$mode-run$run-udp"
	run_iperf3 udp -c "$dest" "${bind[@]}" -u -l 64 -b 0 -t "$t" ||
		log "$mode: UDP: $(iperf3_error "$TMP/udp.json")"
	rx_after=$(server_rx_packets)
	profile_stop
	value=$(iperf3_value "$TMP/udp.json" "($rx_after - $rx_before) / end['sum']['seconds']")
	record "$mode" "$run" udp_pps "$value" \
		"$(iperf3_value "$TMP/udp.json" '"sent %.0f pps, iperf3 server received %.0f pps" % (end["sum"]["packets"] / end["sum"]["seconds"], (end["sum"]["packets"] - end["sum"]["lost_packets"]) / end["sum"]["seconds"])')"
	profile_stages "$mode-run$run-udp" "$(iperf3_value "$TMP/udp.json" 'end["sum"]["packets"]')" \
		packet iperf3 'udp(v6)?_sendmsg'

	profile_start "$mode-run$run-tcp-up"
	run_iperf3 tcp -c "$dest" "${bind[@]}" -t "$t" "${omit[@]}" ||
		log "$mode: TCP: $(iperf3_error "$TMP/tcp.json")"
	profile_stop
	value=$(iperf3_value "$TMP/tcp.json" 'end["sum_received"]["bits_per_second"]')
	record "$mode" "$run" tcp_up_bps "$value" \
		"$(iperf3_value "$TMP/tcp.json" 'end["sum_sent"]["retransmits"]') retransmits"

	run_iperf3 tcpr -c "$dest" "${bind[@]}" -t "$t" "${omit[@]}" -R ||
		log "$mode: TCP -R: $(iperf3_error "$TMP/tcpr.json")"
	value=$(iperf3_value "$TMP/tcpr.json" 'end["sum_received"]["bits_per_second"]')
	record "$mode" "$run" tcp_down_bps "$value" \
		"$(iperf3_value "$TMP/tcpr.json" 'end["sum_sent"]["retransmits"]') retransmits"

	local cps
	profile_start "$mode-run$run-cps"
	cps=$(timeout $((t + 20)) ip netns exec "$CLIENT" "$XLAT64_CPS" run \
		--to "$dest" --port 9000 --seconds "$t" "${cps_source[@]}" 2>>"$TMP/cps-client.log") ||
		log "$mode: connection test failed: $(tail -n 3 "$TMP/cps-client.log")"
	profile_stop
	value=$("$PYTHON" -c 'import json, sys
try: print(json.loads(sys.argv[1])["cps"])
except Exception: print(0)' "$cps")
	record "$mode" "$run" tcp_cps "$value" \
		"$("$PYTHON" -c 'import json, sys
try: print(json.loads(sys.argv[1])["errors"], "errors")
except Exception: print("failed")' "$cps")"
	# Client and server are both xlat64-cps (its process name): every sample of either counts, told
	# from any other xlat64-cps on the machine by their TCP connects and accepts.
	profile_stages "$mode-run$run-cps" "$("$PYTHON" -c 'import json, sys
try: print(json.loads(sys.argv[1])["connections"])
except Exception: print(0)' "$cps")" connection 'xlat64-cps$' . \
		--marker 'tcp_v[46]_connect' --marker inet_csk_accept
}

# --- Main ----------------------------------------------------------------------------------------

for mode in "${MODE_LIST[@]}"; do
	declare -F "setup_$mode" >/dev/null || die "unknown mode $mode (known: ipv6-forward,nat44,tayga,siit,nat64,siit-ingress,nat64-ingress)"
done
command -v iperf3 >/dev/null || die "iperf3 is not installed (bench/run installs it)"
[[ -x $XLAT64_CPS ]] ||
	die "no connection-test binary at $XLAT64_CPS: build it with cmake --build BUILD --target xlat64-cps"
if [[ ,$MODES, == *,tayga,* ]]; then
	command -v tayga >/dev/null || die "tayga is not installed (bench/run installs it)"
fi

log "topology: $CLIENT — $ROUTER — $SERVER"
topology
start_servers
: >"$RAW"
started=$(date +%s)
for run in $(seq "$RUNS"); do
	for mode in "${MODE_LIST[@]}"; do
		DEST="" SOURCE=""
		"setup_$mode"
		log "run $run/$RUNS: $mode (client -> $DEST${SOURCE:+ from $SOURCE})"
		measure "$mode" "$run" "$DEST" "$SOURCE"
		"teardown_$mode"
	done
done
log "measured in $(($(date +%s) - started)) s"

report_args=(--raw "$RAW" --runs "$RUNS" --seconds "$SECONDS_PER_TEST")
((SMOKE)) && report_args+=(--smoke)
[[ -n $OUTPUT ]] && report_args+=(--output "$OUTPUT")
"$PYTHON" "$BENCH_DIR/report.py" "${report_args[@]}"
if [[ -n $PROFILE_DIR ]]; then
	# The stages' medians over the runs: one run's profile swings with the machine.
	"$PYTHON" "$BENCH_DIR/stage_summary.py" --dir "$PROFILE_DIR" --modes "$MODES" \
		>"$PROFILE_DIR/stages.txt" || log "note: no per-stage summary (see $PROFILE_DIR)"
	echo
	cat "$PROFILE_DIR/stages.txt"
	log "profiles: $PROFILE_DIR (stages.txt: the medians above)"
fi
