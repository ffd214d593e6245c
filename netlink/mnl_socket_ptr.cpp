#include "netlink/mnl_socket_ptr.h"

#include <libmnl/libmnl.h>

namespace xlat64 {

void MnlSocketCloser::operator()(mnl_socket* sock) const {
    mnl_socket_close(sock);
}

}  // namespace xlat64
