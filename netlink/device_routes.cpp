#include "netlink/device_routes.h"

#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/route/nexthop.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "netlink/nl_ptr.h"

namespace xlat64 {
namespace {

struct DumpContext {
    int ifindex;
    std::vector<RouteSpec>* out;
};

template <typename Prefix>
Prefix prefix_from(nl_addr* addr) {
    Prefix prefix;
    size_t len = std::min<size_t>(nl_addr_get_len(addr), prefix.addr.size());
    std::memcpy(prefix.addr.data(), nl_addr_get_binary_addr(addr), len);
    prefix.len = static_cast<uint8_t>(nl_addr_get_prefixlen(addr));
    return prefix;
}

bool is_ours(rtnl_route* route, int ifindex) {
    if (rtnl_route_get_protocol(route) != RTPROT_XLAT64 ||
        rtnl_route_get_table(route) != RT_TABLE_MAIN || rtnl_route_get_type(route) != RTN_UNICAST ||
        rtnl_route_get_nnexthops(route) != 1) {
        return false;
    }
    return rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route, 0)) == ifindex;
}

std::optional<RouteSpec> to_spec(rtnl_route* route, int ifindex) {
    nl_addr* dst = rtnl_route_get_dst(route);
    if (dst == nullptr || !is_ours(route, ifindex)) {
        return std::nullopt;
    }
    RouteSpec spec;
    if (rtnl_route_get_family(route) == AF_INET) {
        spec.destination = prefix_from<Ipv4Prefix>(dst);
    } else {
        spec.destination = prefix_from<Ipv6Prefix>(dst);
    }
    uint32_t mtu = 0;
    if (rtnl_route_get_metric(route, RTAX_MTU, &mtu) == 0) {
        spec.mtu = mtu;
    }
    return spec;
}

int on_route(nl_msg* msg, void* arg) {
    auto* context = static_cast<DumpContext*>(arg);
    rtnl_route* raw = nullptr;
    if (rtnl_route_parse(nlmsg_hdr(msg), &raw) < 0) {
        return NL_SKIP;
    }
    nl::RoutePtr route(raw);
    // The kernel filters by protocol and device only with strict checking (5.3+); older kernels
    // send everything, so filter here as well.
    if (auto spec = to_spec(route.get(), context->ifindex)) {
        context->out->push_back(*spec);
    }
    return NL_OK;
}

nl::AddrPtr build_addr(const RoutePrefix& prefix) {
    nl::AddrPtr addr = std::visit(
        [](const auto& p) {
            int family = p.addr.size() == 4 ? AF_INET : AF_INET6;
            return nl::AddrPtr(nl_addr_build(family, p.addr.data(), p.addr.size()));
        },
        prefix);
    if (!addr) {
        throw std::bad_alloc();
    }
    nl_addr_set_prefixlen(addr.get(), std::visit([](const auto& p) { return int{p.len}; }, prefix));
    return addr;
}

nl::RoutePtr build_route(const RouteSpec& spec, int ifindex) {
    nl::RoutePtr route(rtnl_route_alloc());
    rtnl_nexthop* nexthop = rtnl_route_nh_alloc();
    if (!route || !nexthop) {
        rtnl_route_nh_free(nexthop);
        throw std::bad_alloc();
    }
    nl::AddrPtr dst = build_addr(spec.destination);
    rtnl_route_set_family(route.get(), nl_addr_get_family(dst.get()));
    rtnl_route_set_dst(route.get(), dst.get());
    rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
    rtnl_route_set_protocol(route.get(), RTPROT_XLAT64);
    rtnl_route_set_type(route.get(), RTN_UNICAST);
    rtnl_route_nh_set_ifindex(nexthop, ifindex);
    rtnl_route_add_nexthop(route.get(), nexthop);  // the route owns the nexthop from here
    if (spec.mtu != 0) {
        rtnl_route_set_metric(route.get(), RTAX_MTU, spec.mtu);
    }
    return route;
}

}  // namespace

DeviceRoutes::DeviceRoutes(NlSocket& sock, int ifindex, std::string device_name)
    : sock_(sock), ifindex_(ifindex), device_name_(std::move(device_name)) {}

std::vector<RouteSpec> DeviceRoutes::list() const {
    std::vector<RouteSpec> routes;
    list_family(AF_INET, routes);
    list_family(AF_INET6, routes);
    std::sort(routes.begin(), routes.end());
    return routes;
}

void DeviceRoutes::list_family(int family, std::vector<RouteSpec>& out) const {
    const std::string context = std::string("listing ") + (family == AF_INET ? "IPv4" : "IPv6") +
                                " routes via " + device_name_;
    nl::MsgPtr msg(nlmsg_alloc_simple(RTM_GETROUTE, NLM_F_DUMP));
    rtmsg header{};
    header.rtm_family = static_cast<unsigned char>(family);
    header.rtm_table = RT_TABLE_MAIN;
    header.rtm_protocol = RTPROT_XLAT64;
    if (!msg || nlmsg_append(msg.get(), &header, sizeof(header), NLMSG_ALIGNTO) < 0 ||
        nla_put_u32(msg.get(), RTA_OIF, static_cast<uint32_t>(ifindex_)) < 0) {
        throw std::bad_alloc();
    }
    sock_.call(context, [&] { return nl_send_auto(sock_.get(), msg.get()); });
    nl::CbPtr socket_cb(nl_socket_get_cb(sock_.get()));
    nl::CbPtr cb(nl_cb_clone(socket_cb.get()));
    if (!cb) {
        throw std::bad_alloc();
    }
    DumpContext dump{ifindex_, &out};
    nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, on_route, &dump);
    sock_.call(context, [&] { return nl_recvmsgs(sock_.get(), cb.get()); });
}

void DeviceRoutes::add(const RouteSpec& route) {
    nl::RoutePtr request = build_route(route, ifindex_);
    sock_.call("adding route " + to_string(route) + " via " + device_name_,
               [&] { return rtnl_route_add(sock_.get(), request.get(), NLM_F_EXCL); });
}

void DeviceRoutes::remove(const RouteSpec& route) {
    // The request names protocol, device and metrics: the kernel deletes only a route matching
    // all of them, never another owner's route to the same prefix.
    nl::RoutePtr request = build_route(route, ifindex_);
    sock_.call("deleting route " + to_string(route) + " via " + device_name_,
               [&] { return rtnl_route_delete(sock_.get(), request.get(), 0); });
}

}  // namespace xlat64
