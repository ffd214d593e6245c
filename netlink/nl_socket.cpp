#include "netlink/nl_socket.h"

#include <linux/netlink.h>
#include <netlink/attr.h>
#include <netlink/handlers.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cstring>

#include "netlink/nl_ptr.h"

namespace xlat64 {
namespace {

// The ext-ack TLVs follow the nlmsgerr and, unless the kernel capped it, the echoed request.
std::string ext_ack_message(const nlmsgerr* error) {
    const auto* header =
        reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(error) - NLMSG_HDRLEN);
    if (!(header->nlmsg_flags & NLM_F_ACK_TLVS)) {
        return {};
    }
    size_t offset = NLMSG_HDRLEN + sizeof(nlmsgerr);
    if (!(header->nlmsg_flags & NLM_F_CAPPED)) {
        offset += error->msg.nlmsg_len - NLMSG_HDRLEN;
    }
    if (offset >= header->nlmsg_len) {
        return {};
    }
    auto* attrs = reinterpret_cast<nlattr*>(
        const_cast<char*>(reinterpret_cast<const char*>(header) + NLMSG_ALIGN(offset)));
    int attrs_len = static_cast<int>(header->nlmsg_len - NLMSG_ALIGN(offset));
    nlattr* message = nla_find(attrs, attrs_len, NLMSGERR_ATTR_MSG);
    if (message == nullptr || nla_len(message) <= 0) {
        return {};
    }
    return std::string(static_cast<const char*>(nla_data(message)),
                       strnlen(static_cast<const char*>(nla_data(message)),
                               static_cast<size_t>(nla_len(message))));
}

void enable_option(nl_sock* sock, int option) {
    int on = 1;
    // Best effort: older kernels lack these options and still work, only with less detail.
    setsockopt(nl_socket_get_fd(sock), SOL_NETLINK, option, &on, sizeof(on));
}

}  // namespace

void NlSocket::SockDeleter::operator()(nl_sock* sock) const {
    nl_socket_free(sock);
}

NlSocket::NlSocket() : sock_(nl_socket_alloc()) {
    if (!sock_) {
        throw NetlinkError("allocating a netlink socket: out of memory");
    }
    int err = nl_connect(sock_.get(), NETLINK_ROUTE);
    if (err < 0) {
        throw NetlinkError(std::string("connecting to rtnetlink: ") + nl_geterror(err));
    }
    enable_option(sock_.get(), NETLINK_EXT_ACK);
    // Lets the kernel filter route dumps by device and protocol instead of sending a full
    // routing table (a BGP router may hold a million routes).
    enable_option(sock_.get(), NETLINK_GET_STRICT_CHK);
    nl::CbPtr cb(nl_socket_get_cb(sock_.get()));
    nl_cb_err(cb.get(), NL_CB_CUSTOM, &NlSocket::on_error, this);
}

NlSocket::~NlSocket() = default;

int NlSocket::on_error(sockaddr_nl*, nlmsgerr* error, void* self) {
    auto* socket = static_cast<NlSocket*>(self);
    socket->kernel_errno_ = -error->error;
    socket->kernel_message_ = ext_ack_message(error);
    // NL_STOP makes libnl return the translated error, exactly as without this callback.
    return NL_STOP;
}

void NlSocket::clear_kernel_error() {
    kernel_errno_ = 0;
    kernel_message_.clear();
}

std::string NlSocket::describe(int libnl_error) const {
    if (kernel_errno_ == 0) {
        return nl_geterror(libnl_error);
    }
    std::string text = std::strerror(kernel_errno_);
    if (!kernel_message_.empty()) {
        text += " (" + kernel_message_ + ")";
    }
    return text;
}

}  // namespace xlat64
