#include "netlink/link_monitor.h"

#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <system_error>

namespace xlat64 {
namespace {

[[noreturn]] void fail(const char* what) {
    throw std::system_error(errno, std::generic_category(), std::string("link monitor: ") + what);
}

// The interface's name from its IFLA_IFNAME attribute ("" without one).
std::string link_name(const nlmsghdr* nlh) {
    std::string name;
    mnl_attr_parse(
        nlh, sizeof(ifinfomsg),
        [](const nlattr* attr, void* data) {
            if (mnl_attr_get_type(attr) == IFLA_IFNAME &&
                mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
                *static_cast<std::string*>(data) = mnl_attr_get_str(attr);
            }
            return MNL_CB_OK;
        },
        &name);
    return name;
}

int collect(const nlmsghdr* nlh, void* data) {
    if ((nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) ||
        mnl_nlmsg_get_payload_len(nlh) < sizeof(ifinfomsg)) {
        return MNL_CB_OK;
    }
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    LinkEvent event;
    event.kind = nlh->nlmsg_type == RTM_DELLINK ? LinkEvent::Kind::removed
                                                : LinkEvent::Kind::added_or_changed;
    event.ifindex = ifi->ifi_index;
    event.name = link_name(nlh);
    static_cast<LinkEvents*>(data)->events.push_back(std::move(event));
    return MNL_CB_OK;
}

}  // namespace

LinkMonitor::LinkMonitor() : sock_(mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC)) {
    if (!sock_) {
        fail("opening an rtnetlink socket");
    }
    if (mnl_socket_bind(sock_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        fail("binding the rtnetlink socket");
    }
    // The group by number (RTMGRP_LINK, the bind() bit mask, only reaches the first 32).
    const int group = RTNLGRP_LINK;
    if (setsockopt(fd(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0) {
        fail("subscribing to link events (RTNLGRP_LINK)");
    }
    // Room for a burst (a BRAS whose PPP sessions drop together): fewer overruns, each of which
    // costs a reconcile. Best effort: the kernel caps it at net.core.rmem_max.
    const int bytes = 1 << 20;
    setsockopt(fd(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

LinkMonitor::~LinkMonitor() = default;

int LinkMonitor::fd() const {
    return mnl_socket_get_fd(sock_.get());
}

LinkEvents LinkMonitor::drain() {
    LinkEvents out;
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
    while (true) {
        const ssize_t n = mnl_socket_recvfrom(sock_.get(), buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return out;
            }
            if (errno == ENOBUFS) {
                // Events were lost; the socket works on, with what was queued after the loss.
                out.overrun = true;
                continue;
            }
            if (errno == EINTR) {
                continue;
            }
            fail("reading link events");
        }
        // Events are not answers to a request: sequence number and port id 0.
        mnl_cb_run(buffer.data(), static_cast<size_t>(n), 0, 0, collect, &out);
    }
}

const char* to_string(LinkEvent::Kind kind) {
    return kind == LinkEvent::Kind::removed ? "RTM_DELLINK" : "RTM_NEWLINK";
}

}  // namespace xlat64
