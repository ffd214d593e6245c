// xlat64's own nftables table: the NAT44 half of stateful NAT64 (DESIGN.md, "Stateful NAT64 =
// stateless translation + kernel NAT44"). Built with libnftnl, sent with libmnl, every change one
// atomic nfnetlink batch; the nft binary is never run and no other table is ever read or touched.
//
//   table ip xlat64 {
//       comment "managed by xlat64d; remove with xlat64d --teardown"
//       map blocks {
//           type ipv4_addr : interval ipv4_addr . inet_service
//           flags interval
//           counter
//           elements = { 100.64.0.0/30 : 203.0.113.1 . 1024-3071, ... }
//       }
//       chain postrouting {
//           type nat hook postrouting priority srcnat; policy accept;
//           snat ip to ip saddr map @blocks     (with the kernel's port-offset flag, see .cpp)
//           ip saddr 100.64.0.0/10 counter drop
//       }
//   }
//
// One element per subscriber: its internal block (an interval key) maps to its public address and
// port range. The per-element counter counts the NAT sessions the block created (the nat chain
// sees the first packet of each connection only): a counter per block without a rule per block.
// A source in the internal pool without a block is dropped and counted rather than leaked to the
// outside with its internal address.
//
// NAT behaviour (kernel conntrack does the work):
// - mapping: endpoint-independent, from the port-offset flag (see snat_rule in the .cpp): public
//   port = block start + (internal port mod block size), the next free port on a clash.
// - filtering: conntrack's address-and-port-dependent filtering: only the remote address and
//   port a flow was opened to can answer. RFC 4787 REQ-8 recommends endpoint-independent
//   filtering where application transparency matters most and address-dependent filtering where
//   stricter filtering does; the kernel's is stricter still. Endpoint-independent filtering would
//   need an inbound DNAT of public address:port back to the mapping, which is not built yet.
// - exhaustion: when a block has no free port for a new flow, the kernel drops that flow's
//   packets (conntrack insert clash); other subscribers' blocks are unaffected.
// - hairpinning (RFC 6146 section 3.8) is not done by this table yet.
//
// Kernel: 5.13 or newer, for the table comment that marks ownership (NFTA_TABLE_USERDATA); the
// rest is older (interval maps with 16-byte data in four registers, NAT from register ranges with
// NF_NAT_RANGE_PROTO_OFFSET, a set-level counter copied into each new element). Tested on 6.18
// and on Debian 12's 6.1 (vmlab).
//
// Cost: adding or replacing 10^5 blocks is one batch of about 1-4 s; dumping them takes about
// 10 s on 6.18 (the kernel walks the interval tree from the start for each 32 KB dump message),
// so a reconciler should keep its own view and dump rarely.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/ip_address.h"

struct mnl_socket;

namespace xlat64 {

class NftError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Marks the table as ours: only a table with exactly this comment is adopted, changed or deleted.
inline constexpr const char* kNftTableComment =
    "managed by xlat64d; remove with xlat64d --teardown";

struct NatBlock {
    Ipv4Prefix internal;
    Ipv4Address public_address{};
    uint16_t first_port = 0;
    uint16_t last_port = 0;
    auto operator<=>(const NatBlock&) const = default;
};

struct NatBlockCounter {
    NatBlock block;
    uint64_t sessions = 0;  // connections NATed through this block (packets of the counter)
    uint64_t bytes = 0;     // bytes of those connections' first packets
};

// A netlink socket to nfnetlink in the caller's network namespace.
class NftSocket {
  public:
    NftSocket();
    ~NftSocket();
    NftSocket(const NftSocket&) = delete;
    NftSocket& operator=(const NftSocket&) = delete;

    mnl_socket* get() const { return sock_.get(); }
    uint32_t port_id() const { return port_id_; }
    uint32_t next_seq() { return seq_++; }

  private:
    struct Closer {
        void operator()(mnl_socket* sock) const;
    };
    std::unique_ptr<mnl_socket, Closer> sock_;
    uint32_t port_id_ = 0;
    uint32_t seq_;
};

class NftNatTable {
  public:
    enum class State { absent, ours, foreign };

    NftNatTable(NftSocket& sock, std::string name, Ipv4Prefix internal_pool);

    const std::string& name() const { return name_; }
    State observe();
    // Creates the table (one batch) or adopts ours when its sets and rules are as built here;
    // an older shape is rebuilt in one batch that keeps its blocks. Throws for a foreign table.
    // Returns true when it changed something.
    bool ensure();
    // The elements of the blocks map become exactly BLOCKS, in one batch (flush + add).
    void replace_blocks(const std::vector<NatBlock>& blocks);
    void add_blocks(const std::vector<NatBlock>& blocks);
    void remove_blocks(const std::vector<NatBlock>& blocks);
    // The blocks the kernel holds, in address order, with their counters.
    std::vector<NatBlockCounter> read_blocks();
    // One block by its internal prefix, with its counter: one lookup in the kernel's tree rather
    // than a dump (for per-subscriber queries). nullopt when no block has exactly that prefix.
    std::optional<NatBlockCounter> read_block(const Ipv4Prefix& internal);
    // Dropped packets from internal addresses without a block (the drop rule's counter).
    uint64_t unmapped_drops();
    // Deletes the table (and only it). False when there is none; throws for a foreign one.
    bool remove();

  private:
    void require_ours(const char* action);
    bool shape_matches();

    NftSocket& sock_;
    std::string name_;
    Ipv4Prefix internal_pool_;
};

}  // namespace xlat64
