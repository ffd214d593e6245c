#include "netlink/links.h"

#include <ifaddrs.h>
#include <linux/if_arp.h>
#include <netinet/in.h>
#include <netlink/errno.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/tc.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>

#include "netlink/nl_ptr.h"

namespace xlat64 {
namespace {

// Not in every libc's linux/if_arp.h.
constexpr uint16_t kArphrdRawIp = 519;

using CachePtr = std::unique_ptr<nl_cache, nl::Releaser<nl_cache, nl_cache_free>>;

LinkInfo info_of(rtnl_link* link) {
    const char* name = rtnl_link_get_name(link);
    return LinkInfo{rtnl_link_get_ifindex(link), name ? name : "",
                    static_cast<uint16_t>(rtnl_link_get_arptype(link))};
}

}  // namespace

std::vector<LinkInfo> list_links(NlSocket& sock) {
    nl_cache* raw = nullptr;
    sock.call("listing the network interfaces",
              [&] { return rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, &raw); });
    CachePtr cache(raw);
    std::vector<LinkInfo> links;
    for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr;
         obj = nl_cache_get_next(obj)) {
        links.push_back(info_of(reinterpret_cast<rtnl_link*>(obj)));
    }
    return links;
}

nl::LinkPtr find_link(NlSocket& sock, const std::string& name) {
    rtnl_link* raw = nullptr;
    sock.clear_kernel_error();
    int err = rtnl_link_get_kernel(sock.get(), 0, name.c_str(), &raw);
    nl::LinkPtr link(raw);
    // libnl reports a missing device as NLE_NODEV or NLE_OBJ_NOTFOUND, depending on the path.
    if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) {
        return nullptr;
    }
    if (err < 0) {
        throw NetlinkError("looking up interface " + name + ": " + sock.describe(err));
    }
    return link;
}

std::optional<LinkInfo> find_link_info(NlSocket& sock, const std::string& name) {
    nl::LinkPtr link = find_link(sock, name);
    if (!link) {
        return std::nullopt;
    }
    return info_of(link.get());
}

std::vector<int> interfaces_with_clsact(NlSocket& sock) {
    nl_cache* raw = nullptr;
    sock.call("listing the tc qdiscs", [&] { return rtnl_qdisc_alloc_cache(sock.get(), &raw); });
    CachePtr cache(raw);
    std::vector<int> out;
    for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr;
         obj = nl_cache_get_next(obj)) {
        auto* tc = reinterpret_cast<rtnl_tc*>(obj);
        const char* kind = rtnl_tc_get_kind(tc);
        // The legacy ingress qdisc takes tc ingress filters too.
        if (kind != nullptr &&
            (std::string_view(kind) == "clsact" || std::string_view(kind) == "ingress")) {
            out.push_back(rtnl_tc_get_ifindex(tc));
        }
    }
    return out;
}

std::vector<std::string> interfaces_with_ipv4_address() {
    ifaddrs* raw = nullptr;
    if (getifaddrs(&raw) != 0) {
        throw NetlinkError(std::string("listing the IPv4 addresses: ") + std::strerror(errno));
    }
    std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> list(raw, &freeifaddrs);
    std::vector<std::string> names;
    for (const ifaddrs* a = list.get(); a != nullptr; a = a->ifa_next) {
        if (a->ifa_addr != nullptr && a->ifa_addr->sa_family == AF_INET) {
            names.emplace_back(a->ifa_name);
        }
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

std::optional<uint32_t> l2_header_len_of(uint16_t arptype) {
    switch (arptype) {
        case ARPHRD_ETHER:
            return 14;
        case ARPHRD_NONE:     // tun, WireGuard
        case ARPHRD_PPP:      // PPPoE and PPP sessions
        case kArphrdRawIp:    // raw IP (wwan)
        case ARPHRD_TUNNEL:   // ipip, vti
        case ARPHRD_TUNNEL6:  // ip6tnl, vti6
        case ARPHRD_SIT:      // sit
        case ARPHRD_IPGRE:    // gre (layer 3)
        case ARPHRD_IP6GRE:   // ip6gre (layer 3)
            return 0;
        default:
            return std::nullopt;
    }
}

std::string arptype_name(uint16_t arptype) {
    switch (arptype) {
        case ARPHRD_ETHER:
            return "ether";
        case ARPHRD_NONE:
            return "none";
        case ARPHRD_PPP:
            return "ppp";
        case kArphrdRawIp:
            return "rawip";
        case ARPHRD_TUNNEL:
            return "ipip";
        case ARPHRD_TUNNEL6:
            return "tunnel6";
        case ARPHRD_SIT:
            return "sit";
        case ARPHRD_IPGRE:
            return "gre";
        case ARPHRD_IP6GRE:
            return "ip6gre";
        case ARPHRD_LOOPBACK:
            return "loopback";
        default:
            return "type " + std::to_string(arptype);
    }
}

}  // namespace xlat64
