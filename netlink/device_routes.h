// The routes in the main table that send traffic into the xlat64 device: only routes with our
// device as output interface and protocol RTPROT_XLAT64 are listed, added or deleted.
#pragma once

#include <string>
#include <vector>

#include "netlink/nl_socket.h"
#include "netlink/route_spec.h"

namespace xlat64 {

class DeviceRoutes {
  public:
    DeviceRoutes(NlSocket& sock, int ifindex, std::string device_name);

    // Our routes via the device, IPv4 and IPv6, sorted.
    std::vector<RouteSpec> list() const;
    // Fails ("File exists") when the table already has a route to that prefix with the same
    // metric, e.g. the operator's: two owners for one prefix is a conflict to resolve, not hide.
    void add(const RouteSpec& route);
    void remove(const RouteSpec& route);

  private:
    void list_family(int family, std::vector<RouteSpec>& out) const;

    NlSocket& sock_;
    int ifindex_;
    std::string device_name_;
};

}  // namespace xlat64
