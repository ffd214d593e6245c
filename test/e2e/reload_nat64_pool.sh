#!/bin/bash
# Reload of the stateful NAT64 public pool: a public prefix appended to nat64.public_prefixes is
# applied by `xlat64ctl reload` without touching the blocks already handed out, while a NAT64 TCP
# flow keeps going; an invalid nat64 section changes nothing. Lab: test/e2e/lib.sh, nat64_lab.
#
#   dynamic mode, 64-port blocks of ports 1024-1279: 4 blocks per public address
#   before: public_prefixes [203.0.113.0/32]                 -> 4 blocks
#   after:  public_prefixes [203.0.113.0/32, 203.0.113.1/32] -> 8 blocks
source "$(dirname "$0")/lib.sh"

nat64_lab
CONFIG=$E2E_TMP/xlat64.yaml
nat64_config() { # PUBLIC_PREFIXES [BLOCK_SIZE]
	write_config "$CONFIG" <<-YAML
		pool6: 2001:db8:64::/96
		nat64:
		  prefixes: [2001:db8:100::/56]
		  subscriber_length: 64
		  public_prefixes: $1
		  ports: 1024-1279
		  block_size: ${2:-64}
		  mode: dynamic
	YAML
}
nat64_config "[203.0.113.0/32]"
start_daemon "$CONFIG"
start_server "$SERVER" 198.51.100.10 8080
SERVER6=2001:db8:64::c633:640a

# A long NAT64 flow from subscriber 0 (about 24 s at 250 kB/s, long enough for the slow
# emulated VM of test/vm too) runs across the reloads.
start_tcp_flow FLOW "$CLIENT" "$SERVER6" 8080 6000000 250000 2001:db8:100::a
sleep 1
for n in 1 2 3; do
	expect "subscriber 2001:db8:100:$n::/64 gets one of the 4 blocks" \
		nat64_flow udp "2001:db8:100:$n::a" 0 "$SERVER6"
done
before=$(stat_packets nat64_no_free_block)
expect "a fifth subscriber finds every block leased" fails nat64_flow udp 2001:db8:100:4::a 0 "$SERVER6"
after=$(stat_packets nat64_no_free_block)
expect "... counted as nat64_no_free_block ($before -> $after)" test "$after" -gt "$before"
expect "... and logged" grep -q 'nat64: no free port block for new subscriber 2001:db8:100:4::/64' \
	"$E2E_TMP/xlat64d.log"
ctl subscriber list >"$E2E_TMP/subscribers-before.txt"
cat "$E2E_TMP/subscribers-before.txt"

# --- append a public prefix ---------------------------------------------------------------------
nat64_config "[203.0.113.0/32, 203.0.113.1/32]"
ctl_reload "$E2E_TMP/reload.out" || fail "reload of the grown pool failed"
expect "the reload adds the new blocks and queues them, resetting nothing" \
	bash -c "grep -q 'add NAT44 blocks 4..7' '$E2E_TMP/xlat64d.log' &&
		grep -q 'queue free NAT64 blocks 4..7' '$E2E_TMP/xlat64d.log' &&
		! grep -q 'reset NAT64 hosts and blocks' <(sed -n '/reload (/,\$p' '$E2E_TMP/xlat64d.log')"
ctl subscriber list >"$E2E_TMP/subscribers-after.txt"
expect "the four subscribers keep their blocks" \
	diff <(cut -c1-76 "$E2E_TMP/subscribers-before.txt") <(cut -c1-76 "$E2E_TMP/subscribers-after.txt")
expect "the fifth subscriber now gets a block" nat64_flow udp 2001:db8:100:4::a 0 "$SERVER6"
expect "... on the new public address 203.0.113.1" \
	bash -c "ctl() { nsenter --net=/run/netns/$E2E_ROUTER $XLAT64CTL --socket $E2E_SOCKET \"\$@\"; }; ctl subscriber show 2001:db8:100:4::/64 | grep -q 'public        203.0.113.1 ports 1024-1087'"
expect "the NAT64 flow was still running after the reload" kill -0 "$FLOW"

# --- an invalid nat64 section changes nothing ------------------------------------------------------
nft_snapshot() {
	in_ns "$E2E_ROUTER" nft -s list map ip xlat64 blocks
	in_ns "$E2E_ROUTER" nft -s list chain ip xlat64 postrouting
}
nft_snapshot >"$E2E_TMP/nft-before.txt"
kernel_snapshot >"$E2E_TMP/kernel-before.txt"
nat64_config "[203.0.113.0/32, 203.0.113.1/32]" 48
rc=0
ctl_reload "$E2E_TMP/reload-invalid.out" || rc=$?
expect "a block_size that is not a power of two is refused (exit 1)" test "$rc" -eq 1
expect "... naming nat64.block_size and its line" \
	grep -qE 'xlat64.yaml:[0-9]+:[0-9]+: nat64\.block_size: expected a power of two' "$E2E_TMP/reload-invalid.out"
nft_snapshot >"$E2E_TMP/nft-after.txt"
kernel_snapshot >"$E2E_TMP/kernel-after.txt"
expect "the nftables table is unchanged" diff -u "$E2E_TMP/nft-before.txt" "$E2E_TMP/nft-after.txt"
expect "the device, routes and maps are unchanged" diff -u "$E2E_TMP/kernel-before.txt" "$E2E_TMP/kernel-after.txt"
expect "NAT64 traffic still flows" nat64_flow tcp 2001:db8:100:5::a 0 "$SERVER6"
expect "the NAT64 flow across both reloads completed, content verified" wait_tcp_flow FLOW
