// Link events of the current network namespace: an rtnetlink socket subscribed to RTNLGRP_LINK
// (libmnl), non-blocking, for the daemon's event loop. The daemon reconciles when an ingress fast
// path interface appears, disappears or is re-created, instead of waiting for the next reload.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "netlink/mnl_socket_ptr.h"

namespace xlat64 {

struct LinkEvent {
    enum class Kind { added_or_changed, removed };
    Kind kind = Kind::added_or_changed;  // RTM_NEWLINK, RTM_DELLINK
    int ifindex = 0;
    std::string name;
};

// What one drain() found: the events, and whether the kernel dropped some for want of room in
// the socket's receive buffer (ENOBUFS): then the events say too little, and the caller has to
// look at the interfaces afresh.
struct LinkEvents {
    std::vector<LinkEvent> events;
    bool overrun = false;
};

class LinkMonitor {
  public:
    // Opens and subscribes the socket in the caller's network namespace; throws
    // std::system_error ("link monitor: opening an rtnetlink socket: ...").
    LinkMonitor();
    ~LinkMonitor();
    LinkMonitor(const LinkMonitor&) = delete;
    LinkMonitor& operator=(const LinkMonitor&) = delete;

    int fd() const;
    // Reads every message queued now, without blocking.
    LinkEvents drain();

  private:
    MnlSocketPtr sock_;
};

// "RTM_NEWLINK" or "RTM_DELLINK", for log lines.
const char* to_string(LinkEvent::Kind kind);

}  // namespace xlat64
