// The network interfaces of the current network namespace, as the ingress fast path needs them:
// name, index and link-layer type (rtnetlink link dump, libnl-route-3).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "netlink/nl_ptr.h"
#include "netlink/nl_socket.h"

namespace xlat64 {

struct LinkInfo {
    int ifindex = 0;
    std::string name;
    uint16_t arptype = 0;  // ARPHRD_* (linux/if_arp.h)
};

// Every interface of the namespace (one dump).
std::vector<LinkInfo> list_links(NlSocket& sock);
// One interface by name: the libnl object, or null when there is none.
nl::LinkPtr find_link(NlSocket& sock, const std::string& name);
// The same as a LinkInfo; nullopt when there is none.
std::optional<LinkInfo> find_link_info(NlSocket& sock, const std::string& name);

// The indexes of the interfaces that have a clsact (or legacy ingress) qdisc (one qdisc dump for
// the namespace):
// only they can carry a tc ingress filter of xlat64's, so a router with thousands of PPP
// sessions is not asked about each of them on every reconcile.
std::vector<int> interfaces_with_clsact(NlSocket& sock);

// The names of the interfaces that have an IPv4 address (reverse-path filtering depends on it),
// sorted; one address dump for the namespace.
std::vector<std::string> interfaces_with_ipv4_address();

// Bytes before the IP header at tc ingress of an interface of this link-layer type: 14 for
// Ethernet, 0 for interfaces without a link-layer header (tun, PPP, raw IP, IP tunnels,
// WireGuard); nullopt for every other type, whose header the translator cannot skip.
std::optional<uint32_t> l2_header_len_of(uint16_t arptype);
// "ether", "ppp", "none", ... or "type N", for messages.
std::string arptype_name(uint16_t arptype);

}  // namespace xlat64
