// A reader of the kernel's conntrack table over ctnetlink (libmnl, no libnetfilter_conntrack), in
// the caller's network namespace. Stateful NAT64 leaves its sessions to conntrack (DESIGN.md,
// "Stateful NAT64"), so "how many sessions does this subscriber have" is a question for
// conntrack: one dump, counted per original source address, without keeping the entries.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>

#include "config/ip_address.h"
#include "netlink/mnl_socket_ptr.h"

namespace xlat64 {

class ConntrackError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct ConntrackCounts {
    uint64_t tcp = 0;
    uint64_t udp = 0;
    uint64_t icmp = 0;
    uint64_t other = 0;
    uint64_t total() const { return tcp + udp + icmp + other; }
    auto operator<=>(const ConntrackCounts&) const = default;
};

class Conntrack {
  public:
    Conntrack();
    ~Conntrack();
    Conntrack(const Conntrack&) = delete;
    Conntrack& operator=(const Conntrack&) = delete;

    // One dump of the IPv4 conntrack table: for every entry whose original source address lies
    // in WITHIN, counts it under that address and its protocol. Entries come and go during the
    // dump, so the result is a snapshot of each hash bucket, not of the whole table at one
    // instant. Throws ConntrackError with the cause (ENOBUFS: the socket fell behind).
    std::map<Ipv4Address, ConntrackCounts> count_by_source(const Ipv4Prefix& within);

  private:
    MnlSocketPtr sock_;
    uint32_t port_id_ = 0;
    uint32_t seq_;
};

}  // namespace xlat64
