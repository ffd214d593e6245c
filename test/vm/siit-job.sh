#!/bin/bash
# Runs inside the vmlab guest (stock Debian 12, kernel 6.1): the e2e translation tests with the
# host-built xlat64d, shared at /mnt/host/xlat64. Exits non-zero when any check fails.
set -euo pipefail
echo "guest kernel: $(uname -r)"
systemctl is-system-running --wait || true
share=/mnt/host/xlat64
export XLAT64D=$share/bin/xlat64d XLAT64CTL=$share/bin/xlat64ctl
# The guest is emulated (TCG): a smaller TCP transfer keeps the job short; content is still verified.
export E2E_TCP_BYTES=2000000

echo "== the BPF object passes the 6.1 verifier (bpftool prog loadall)"
mkdir -p /sys/fs/bpf/xlat64-verify
bpftool prog loadall "$share/xlat64.bpf.o" /sys/fs/bpf/xlat64-verify
bpftool prog show pinned /sys/fs/bpf/xlat64-verify/xlat64_egress
rm -rf /sys/fs/bpf/xlat64-verify /sys/fs/bpf/xlat_* # loadall pins BY_NAME maps at the bpffs root

# rfc7915_*: ICMP errors, PMTUD (50 MB) and fragments on the 6.1 kernel; the image has no traceroute,
# which that test skips and says so.
for test in siit_ipv6_client_pool6 siit_ipv4_client_eamt rfc7915_pmtud_fragments_traceroute; do
	echo "== $test"
	bash "$share/e2e/$test.sh"
done
echo "vm: all checks passed"
