#!/bin/bash
# Runs inside the vmlab guest (stock Debian 12, kernel 6.1): the e2e translation tests with the
# host-built xlat64d, shared at /mnt/host/xlat64. It covers stateless SIIT (pool6, EAMT, RFC 7915
# ICMP errors, PMTUD, fragments) and stateful NAT64: the NAT44 half alone (nat44_blocks: table ip
# xlat64 programmed by nat44_driver: dynsets, per-block connlimit, NAT with concatenated map data)
# and end to end through xlat64d's BPF host mapping and nftables (nat64_subscribers). Every test
# runs even after one fails; exits non-zero when any check fails.
set -euo pipefail
echo "guest kernel: $(uname -r)"
systemctl is-system-running --wait || true
share=/mnt/host/xlat64
export XLAT64D=$share/bin/xlat64d XLAT64CTL=$share/bin/xlat64ctl
export NAT44_DRIVER=$share/bin/nat44_driver
# The guest is emulated (TCG): a smaller TCP transfer keeps the job short; content is still verified.
export E2E_TCP_BYTES=2000000
echo "nft: $(nft --version); conntrack tool: $(command -v conntrack || echo missing)"
failed=()

echo "== the BPF object passes the 6.1 verifier (bpftool prog loadall)"
mkdir -p /sys/fs/bpf/xlat64-verify
if bpftool prog loadall "$share/xlat64.bpf.o" /sys/fs/bpf/xlat64-verify; then
	bpftool prog show pinned /sys/fs/bpf/xlat64-verify/xlat64_egress
	ls /sys/fs/bpf/xlat64-verify
else
	echo "FAIL: bpftool prog loadall (verifier log above)"
	failed+=(verifier)
fi
rm -rf /sys/fs/bpf/xlat64-verify /sys/fs/bpf/xlat_* # loadall pins BY_NAME maps at the bpffs root

# Every datapath fixture through both instances of the program as xlat64d loads them (the
# device's, and the one for an interface's ingress, whose code loadall's defaults leave out).
echo "== datapath fixtures (BPF_PROG_TEST_RUN)"
if XLAT64_FIXTURE_DIR=$share/fixtures "$share/bin/datapath_tests"; then
	echo "== datapath fixtures: PASS"
else
	failed+=(datapath_fixtures)
fi

# rfc7915_*: ICMP errors, PMTUD (50 MB) and fragments on the 6.1 kernel; the image has no traceroute,
# which that test skips and says so. nat44_blocks checks conntrack's view only with the conntrack
# tool, which the image lacks (it says so); nat64_subscribers reads /proc/net/nf_conntrack instead.
# eamt_file: batched LPM trie writes (6.1 may lack batch operations for tries: the fallback) and
# aggregated routes; nat64_bulk_import and nat64_restart_reboot: batched hash map updates and
# lookups, and the blocks map of one-address blocks (a hash map), with traffic. *_ingress_fast_path:
# the cls_bpf filter on the interfaces' clsact qdiscs, and the translation at tc ingress.
# nat64_spoofed_source, nat64_ingress_relink: the iface_index set of trusted interfaces and the
# daemon's rtnetlink link watch.
for test in siit_ipv6_client_pool6 siit_ipv4_client_eamt rfc7915_pmtud_fragments_traceroute \
	nat44_blocks nat64_subscribers nat64_dynamic reload_nat64_pool eamt_runtime eamt_file \
	nat64_bulk_import nat64_restart_reboot siit_ingress_fast_path nat64_ingress_fast_path \
	nat64_spoofed_source nat64_ingress_relink; do
	echo "== $test"
	start=$SECONDS
	if bash "$share/e2e/$test.sh"; then
		echo "== $test: PASS ($((SECONDS - start)) s)"
	else
		echo "== $test: FAIL ($((SECONDS - start)) s); last kernel messages:"
		dmesg | tail -n 20
		failed+=("$test")
	fi
done
if ((${#failed[@]})); then
	echo "vm: FAILED: ${failed[*]}"
	exit 1
fi
echo "vm: all checks passed"
