// An owned libmnl socket, closed with mnl_socket_close: the one deleter of NftSocket, Conntrack
// and LinkMonitor. Their headers see mnl_socket only declared; libmnl stays in the .cpp files.
#pragma once

#include <memory>

struct mnl_socket;

namespace xlat64 {

struct MnlSocketCloser {
    void operator()(mnl_socket* sock) const;
};
using MnlSocketPtr = std::unique_ptr<mnl_socket, MnlSocketCloser>;

}  // namespace xlat64
