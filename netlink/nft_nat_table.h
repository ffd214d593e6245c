// xlat64's own nftables table: the NAT44 half of stateful NAT64 (DESIGN.md, "Stateful NAT64 =
// stateless translation + kernel NAT44"). Built with libnftnl, sent with libmnl, every change one
// atomic nfnetlink batch; the nft binary is never run and no other table is ever read or touched.
// With the shape {internal pool 100.64.0.0/10, blocks of /30, 16 ports per block}, `nft list
// table ip xlat64` prints:
//
//   table ip xlat64 {
//       comment "managed by xlat64d; remove with xlat64d --teardown"
//       map blocks {
//           type ipv4_addr : interval ipv4_addr . inet_service
//           flags interval                 (not with blocks of one address)
//           counter
//           elements = { 100.64.0.0/30 counter packets 0 bytes 0 : 203.0.113.1 . 1024-1039, ... }
//       }
//       set sessions {
//           type ipv4_addr . inet_proto
//           size 1048576
//           flags dynamic
//       }
//       set exhausted {
//           type ipv4_addr . inet_proto
//           size 65536
//           flags dynamic,timeout
//           counter
//           timeout 1h
//       }
//       map hairpin {
//           type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
//           size 1048576
//           flags dynamic
//       }
//       set trusted_ifaces {
//           type iface_index                   (the fast path's interfaces, by index)
//           elements = { "eth1" }              (nft prints an index it cannot resolve as a number)
//       }
//       chain prerouting {
//           type nat hook prerouting priority dstnat; policy accept;
//           ip saddr 100.64.0.0/10 iifname != "xlat64" iif != @trusted_ifaces counter packets 0
//               bytes 0 drop
//           ip saddr 100.64.0.0/10 dnat ip to ip daddr . meta l4proto . th dport map @hairpin
//           ip daddr 100.64.0.0/10 counter packets 0 bytes 0 drop
//       }
//       chain postrouting {
//           type nat hook postrouting priority srcnat; policy accept;
//           ip saddr 100.64.0.0/10 add @sessions { ip saddr & 255.255.255.252 . meta l4proto
//               ct count over 16 } update @exhausted { ip saddr & 255.255.255.252 . meta l4proto }
//               drop
//           snat ip to ip saddr map @blocks     (with the kernel's port-offset flag, see .cpp)
//           ip saddr 100.64.0.0/10 counter packets 0 bytes 0 drop
//       }
//       chain track {
//           type filter hook postrouting priority srcnat + 1; policy accept;
//           ct status ! confirmed ct original ip saddr 100.64.0.0/10 meta l4proto { tcp, udp }
//               add @hairpin { ct reply ip daddr . meta l4proto . ct reply proto-dst
//               ct count over 0 : ct original ip saddr . ct original proto-src }
//       }
//   }
//
// Per-packet cost: the nat chains see a connection's first packet only (and every packet of a
// flow whose first packet they dropped); the track chain sees every packet after SNAT but stops
// an established connection's packet at its first test (ct status, three expressions, no set).
// Everything per connection (sessions, blocks, hairpin) is looked up or written once.
//
// One element per subscriber: its internal block (an interval key; a plain address when blocks
// are one address each, hosts_per_subscriber 1, so that the map is a hash rather than an
// interval tree: half the elements and no tree walk to insert a million) maps to its public
// address and port range. The per-element counter counts the NAT sessions the block created (the
// nat chain sees the first packet of each connection only): a counter per block without a rule per
// block. A source in the internal pool without a block is dropped and counted rather than leaked to
// the outside with its internal address.
//
// NAT behaviour (kernel conntrack does the work):
// - mapping: endpoint-independent, from the port-offset flag (see snat_rule in the .cpp): public
//   port = block start + (internal port mod block size), the next free port on a clash.
// - filtering: conntrack's address-and-port-dependent filtering: only the remote address and
//   port a flow was opened to can answer. RFC 4787 REQ-8 recommends endpoint-independent
//   filtering where application transparency matters most and address-dependent filtering where
//   stricter filtering does; the kernel's is stricter still. The prerouting chain drops anything
//   else addressed to the internal pool (a new connection towards it that is not a hairpin
//   DNAT), and counts it.
// - spoofed internal sources: a packet from the internal pool is a subscriber's only when it
//   comes out of the translator, on the xlat64 device or, translated by the ingress fast path, on
//   a listed interface (whose program drops plain IPv4 from the pool). Any other interface's
//   (loose reverse-path filtering accepts them: the pool is routed) would be SNATed to that
//   subscriber's public block; the prerouting chain drops them first, and counts them. The fast
//   path's interfaces are trusted by index, and only while its program is on them: an interface
//   re-created under a listed name (a PPP session that reconnects) has a new index, and stays
//   untrusted until the daemon has attached the program again.
// - exhaustion: a subscriber has at most block_ports live connections per protocol (TCP, UDP,
//   ICMP apart): the connlimit in the sessions set refuses the next one before it is NATed, and
//   the exhausted set records (internal block, protocol) with a counter of refused packets for
//   an hour. Other subscribers are unaffected.
// - hairpinning (RFC 6146 section 3.8): the track chain learns public address . protocol . port
//   -> internal address . port of every TCP and UDP flow from its first packet; a packet from
//   the pool to such a public address and port is DNATed to the internal one in prerouting and
//   then SNATed like any other, so the receiver sees the sender's public address and port. An
//   entry counts the connections behind it (connlimit) and the kernel's set garbage collector
//   removes it about a second after the last one is gone: it lives exactly as long as the
//   mapping is in use, however rarely the flows send, with nothing to refresh or collect in
//   userspace. When two hosts of one block use the same public port towards different
//   destinations, the first one keeps the entry.
//
// Kernel: 5.13 or newer, for the table comment that marks ownership (NFTA_TABLE_USERDATA); the
// rest is older (interval maps with 16-byte data in four registers, NAT from register ranges with
// NF_NAT_RANGE_PROTO_OFFSET, connlimit in dynamic set elements, a set-level counter copied into
// each new element, also into those added from the packet path, since 5.11). Tested on 6.18 and
// on Debian 12's 6.1 (test/vm).
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
#include "netlink/mnl_socket_ptr.h"

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

// The shape of the table: what its rules and its trusted_ifaces set are built from. Two tables
// of the same shape are equal but for the elements of the blocks map and of the dynamic sets.
struct NftNatShape {
    Ipv4Prefix internal_pool;
    // Each subscriber's internal block is a /block_len inside the pool (32 - log2 of the hosts
    // per subscriber).
    uint8_t block_len = 32;
    // Ports per block: a subscriber's limit of live connections per protocol.
    uint32_t block_ports = 1;
    // A counter in every blocks element (connections the block created); nat64.session_counters.
    bool session_counters = true;
    // Where a packet with a source in the internal pool may arrive: the translator device, by
    // name in the rule, and the interfaces that carry the ingress fast path's program, by index
    // (sorted, no duplicates; see NftNatTable::set_trusted_ifindexes).
    //
    // The device by name: only the translator emits packets there (its program redirects to the
    // device's ingress, the daemon writes the slow path's into the tun), the daemon refuses to
    // adopt a device of that name without its alias, and the device is created in the plan that
    // builds this table, before its index is known. The fast path's interfaces by index: an
    // interface that appears or is re-created under a listed name must not be trusted before the
    // program that drops plain IPv4 from the pool is on it, and a new interface has a new index.
    // Empty TRUSTED_DEVICE: a shape for the blocks and counters only, never for building the table.
    std::string trusted_device;
    // The elements of the trusted_ifaces set: a change replaces them in place (ensure(),
    // set_trusted_ifindexes()), without the rebuild that would refill a blocks map of up to a
    // million elements.
    std::vector<uint32_t> trusted_ifindexes;
    bool operator==(const NftNatShape&) const = default;
};

// A subscriber refused connections of one protocol for want of ports, in the last hour.
struct NatExhaustion {
    Ipv4Prefix internal_block;
    uint8_t l4proto = 0;   // IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP
    uint64_t refused = 0;  // packets refused (each a new connection's attempt)
    auto operator<=>(const NatExhaustion&) const = default;
};

// One learnt hairpin mapping: a flow's public address and port and the internal ones behind it.
struct NatHairpin {
    Ipv4Address public_address{};
    uint8_t l4proto = 0;
    uint16_t public_port = 0;
    Ipv4Address internal_address{};
    uint16_t internal_port = 0;
    auto operator<=>(const NatHairpin&) const = default;
};

// What a counted drop rule dropped.
struct NatDropCounter {
    uint64_t packets = 0;
    uint64_t bytes = 0;
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
    MnlSocketPtr sock_;
    uint32_t port_id_ = 0;
    uint32_t seq_;
};

class NftNatTable {
  public:
    enum class State { absent, ours, foreign };

    // Throws NftError for a shape that cannot be built (blocks larger than the pool, no ports).
    NftNatTable(NftSocket& sock, std::string name, const NftNatShape& shape);

    const std::string& name() const { return name_; }
    const NftNatShape& shape() const { return shape_; }
    State observe();
    // Our table's sets, chains, rules and trusted interfaces are exactly those of this shape
    // (ensure() would adopt it unchanged).
    bool shape_matches();
    // shape_matches() but for the elements of trusted_ifaces: ensure() would at most replace
    // those in place. A table of an earlier version (trusted_ifaces of interface names) does not
    // match: ensure() rebuilds it.
    bool structure_matches();
    // Creates the table (one batch) or adopts ours when its sets, chains and rules are exactly
    // those of this shape, replacing the trusted interfaces in one batch if they differ; any
    // other (older version, other pool, block length or ports) is rebuilt in one batch that
    // keeps its blocks. Throws for a foreign table. Returns true when it changed something.
    bool ensure();
    // The elements of trusted_ifaces become IFINDEXES, in one batch, in place (the shape's
    // trusted_ifindexes follow). Throws for a foreign or absent table.
    void set_trusted_ifindexes(std::vector<uint32_t> ifindexes);
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
    // Dropped packets towards the internal pool that were neither replies nor hairpin DNATs (the
    // prerouting chain's counted drop towards the pool; the forward chain's in earlier versions).
    uint64_t forward_drops();
    // Dropped packets with a source in the internal pool that arrived on an untrusted interface:
    // spoofed subscriber addresses. The rule names the trusted device: the shape must have it
    // (the trusted indexes are a set's elements, not part of the rule).
    NatDropCounter spoofed_source_drops();
    // The elements of the trusted_ifaces set (interface indexes), sorted.
    std::vector<uint32_t> read_trusted_ifindexes();
    // The (internal block, protocol) pairs refused for exhaustion within the last hour, with
    // their counts, in address order.
    std::vector<NatExhaustion> read_exhausted();
    // The hairpin map (one entry per public address . protocol . port of live TCP or UDP flows
    // from the pool), in public address order. A dump: for counts and tests, not per packet.
    std::vector<NatHairpin> read_hairpins();
    // Deletes the table (and only it). False when there is none; throws for a foreign one.
    bool remove();

  private:
    void require_ours(const char* action);
    void replace_trusted_ifindexes();

    NftSocket& sock_;
    std::string name_;
    NftNatShape shape_;
};

}  // namespace xlat64
