// What a validated `nat64:` section means for the kernel: the translator's NAT64 settings, its
// admitted-prefix table, the nftables blocks (internal block k -> public block k) and the order in
// which dynamic mode hands blocks out. Pure functions of the configuration, unit-tested directly.
//
// Internal block k belongs to port block k in both modes (xlat64_abi.h, "NAT64 host mapping"), so
// the nftables map is fixed by the configuration and the data path alone decides which subscriber
// uses which block: deterministically (RFC 7422) or from a queue of free blocks (dynamic).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/nat64_config.h"
#include "daemon/bpf_translator.h"
#include "daemon/port_blocks.h"
#include "netlink/nft_nat_table.h"

namespace xlat64 {

struct Nat64PrefixEntry {
    Ipv6Prefix prefix;
    uint64_t first_subscriber = 0;  // deterministic index of its first subscriber
    auto operator<=>(const Nat64PrefixEntry&) const = default;
};

Nat64Params nat64_params(const Nat64Config& config);
std::vector<Nat64PrefixEntry> nat64_prefix_entries(const Nat64Config& config);

// Blocks that get an nftables element: every block in dynamic mode, one per subscriber in
// deterministic mode (subscriber i uses block i).
uint64_t nat64_mapped_blocks(const Nat64Config& config);
// The nftables elements of blocks FIRST..LAST-1.
std::vector<NatBlock> nat64_nat_blocks(const Nat64Config& config, uint64_t first, uint64_t last);
// nat64_nat_blocks one block at a time, with the layout worked out once: for the ledger and the
// run-time, which describe blocks one by one (a million of them at a restore or an import).
class NatBlockLayout {
  public:
    explicit NatBlockLayout(const Nat64Config& config);
    NatBlock operator()(uint64_t block) const;

  private:
    BlockSpace blocks_;
    uint32_t internal_base_;
    uint32_t hosts_;
    uint8_t internal_len_;
};

// Blocks FIRST..LAST-1 in the order dynamic mode should hand them out: the first block of every
// public address, then the second of each..., so a lightly used pool spreads its subscribers over
// all public addresses.
std::vector<uint32_t> nat64_free_order(const Nat64Config& config, uint64_t first, uint64_t last);

// What a change from the kernel's NAT64 settings (HAVE) to the configuration's (WANT) means for
// the hosts and blocks handed out so far.
enum class Nat64Transition {
    unchanged,  // nothing to do
    grow,       // public prefixes appended: existing blocks keep their meaning, new ones added
    reset,      // the blocks mean something else now: every mapping is dropped
};
Nat64Transition nat64_transition(const std::optional<Nat64Params>& have, const Nat64Config& want);

// The nftables table's shape for this configuration. TRUSTED_DEVICE and TRUSTED_IFINDEXES:
// where a source in the internal pool may arrive from (the translator device by name, the
// interfaces carrying the ingress fast path by index; see NftNatShape). Without a device the
// shape serves for the blocks and their counters only (adding, reading), never to build or check
// the table or to read the spoofed-source counter, whose rule names the device.
NftNatShape nat64_nft_shape(const Nat64Config& config, std::string trusted_device = {},
                            std::vector<uint32_t> trusted_ifindexes = {});

}  // namespace xlat64
