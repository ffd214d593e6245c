#!/bin/bash
# `xlat64ctl subscriber import` of a file whose requests would pass the daemon's limit (16 MiB
# from root) in chunks of 65,536: 65,000 subscribers with account ids of the longest length
# allowed, 253 bytes, some with characters JSON escapes (about 18 MB of file). xlat64ctl cuts
# such a file into smaller chunks by size as well as by count. Deterministic NAT64, so every
# subscriber has its block by configuration and nothing is leased. Lab: nat64_lab
# (test/e2e/lib.sh).
#
# Checks: the import succeeds in one run (in chunks of 65,536 alone its one request would be
# refused) with every subscriber stored once, with its own account id byte for byte; importing it
# again changes nothing.
source "$(dirname "$0")/lib.sh"

nat64_lab
write_config "$E2E_TMP/xlat64.yaml" <<'YAML'
pool6: 2001:db8:64::/96
nat64:
  prefixes: [2001:db8:100::/48]
  subscriber_length: 64
  hosts_per_subscriber: 1
  public_prefixes: [203.0.113.0/24]
  block_size: 64
  mode: deterministic
YAML
STORE=$E2E_STATE_DIR/state.db
start_daemon "$E2E_TMP/xlat64.yaml"

COUNT=65000
# account id K: 253 bytes, with a backslash and a double quote in every tenth.
"$PYTHON" - "$COUNT" >"$E2E_TMP/subscribers.txt" <<'PY'
import sys
for k in range(int(sys.argv[1])):
    mark = '\\"' if k % 10 == 0 else "xx"
    account = f"acct-{k:08d}-{mark}-" + "a" * 253
    print(f"2001:db8:100:{k:x}::/64 {account[:253]}")
PY
size=$(stat -c %s "$E2E_TMP/subscribers.txt")
echo "file: $size bytes"
expect "the file is larger than one request may be ($size bytes)" test "$size" -gt $((16 << 20))

out=$(ctl subscriber import "$E2E_TMP/subscribers.txt")
echo "$out"
expect "all $COUNT imported in one run" \
	grep -qF "imported $COUNT subscribers from $E2E_TMP/subscribers.txt: $COUNT added, 0 with a new account id, 0 unchanged" <<<"$out"

"$PYTHON" - "$STORE" "$E2E_TMP/subscribers.txt" <<'PY' || fail "the store does not hold the file's subscribers"
import ipaddress, sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
net = ipaddress.IPv6Network
stored = {net(p): a for p, a in db.execute("SELECT prefix, account FROM subscribers")}
wanted = {net(p): a for p, a in (line.split() for line in open(sys.argv[2]))}
if stored != wanted:
    missing = len(set(wanted) - set(stored))
    wrong = sum(1 for p in wanted if p in stored and stored[p] != wanted[p])
    sys.exit(f"{len(stored)} stored, {missing} missing, {wrong} with another account id")
print(f"{len(stored)} subscribers stored with their account ids")
PY

out=$(ctl subscriber import "$E2E_TMP/subscribers.txt")
expect "importing it again changes nothing" \
	grep -qF ": 0 added, 0 with a new account id, $COUNT unchanged" <<<"$out"
stop_daemon
