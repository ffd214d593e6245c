// Owning pointers for libnl objects (internal to netlink/: callers never see libnl types).
#pragma once

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include <memory>

namespace xlat64::nl {

template <typename T, void (*Release)(T*)>
struct Releaser {
    void operator()(T* object) const { Release(object); }
};

using LinkPtr = std::unique_ptr<rtnl_link, Releaser<rtnl_link, rtnl_link_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, Releaser<rtnl_route, rtnl_route_put>>;
using AddrPtr = std::unique_ptr<nl_addr, Releaser<nl_addr, nl_addr_put>>;
using MsgPtr = std::unique_ptr<nl_msg, Releaser<nl_msg, nlmsg_free>>;
using CbPtr = std::unique_ptr<nl_cb, Releaser<nl_cb, nl_cb_put>>;

}  // namespace xlat64::nl
