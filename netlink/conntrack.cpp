#include "netlink/conntrack.h"

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace xlat64 {
namespace {

constexpr const char* kDumpContext = "dumping the IPv4 conntrack table";
// One dump message is at most 32 KB on current kernels (more with a larger receive buffer on
// old ones); a larger buffer never truncates one.
constexpr size_t kReceiveBuffer = 256 * 1024;

// The attribute of TYPE among the LEN bytes of attributes at START, or nullptr. (libmnl's
// iteration macros do not compile as C++.)
const nlattr* find_attr(const void* start, size_t len, uint16_t type) {
    const nlattr* found = nullptr;
    auto* attr = static_cast<const nlattr*>(start);
    for (int left = static_cast<int>(len); mnl_attr_ok(attr, left);) {
        if (mnl_attr_get_type(attr) == type) {
            found = attr;
        }
        const nlattr* next = mnl_attr_next(attr);
        left -= static_cast<int>(reinterpret_cast<const char*>(next) -
                                 reinterpret_cast<const char*>(attr));
        attr = next;
    }
    return found;
}

// The attribute of TYPE directly inside NEST, or nullptr.
const nlattr* nested(const nlattr* nest, uint16_t type) {
    return find_attr(mnl_attr_get_payload(nest), mnl_attr_get_payload_len(nest), type);
}

struct Dump {
    Ipv4Prefix within;
    std::map<Ipv4Address, ConntrackCounts>* counts;
};

// One conntrack entry: its original tuple's source address and protocol. Entries without them
// (which the kernel never sends for AF_INET) are skipped rather than guessed.
int count_entry(const nlmsghdr* nlh, void* data) {
    auto* dump = static_cast<Dump*>(data);
    const auto* payload = static_cast<const char*>(mnl_nlmsg_get_payload(nlh));
    const nlattr* orig =
        find_attr(payload + MNL_ALIGN(sizeof(nfgenmsg)),
                  mnl_nlmsg_get_payload_len(nlh) - MNL_ALIGN(sizeof(nfgenmsg)), CTA_TUPLE_ORIG);
    const nlattr* ip = orig ? nested(orig, CTA_TUPLE_IP) : nullptr;
    const nlattr* proto = orig ? nested(orig, CTA_TUPLE_PROTO) : nullptr;
    const nlattr* src = ip ? nested(ip, CTA_IP_V4_SRC) : nullptr;
    const nlattr* num = proto ? nested(proto, CTA_PROTO_NUM) : nullptr;
    if (src == nullptr || num == nullptr || mnl_attr_get_payload_len(src) != 4) {
        return MNL_CB_OK;
    }
    Ipv4Address address{};
    std::memcpy(address.data(), mnl_attr_get_payload(src), 4);  // network order, as ours
    if (!contains(dump->within, address)) {
        return MNL_CB_OK;
    }
    ConntrackCounts& c = (*dump->counts)[address];
    switch (mnl_attr_get_u8(num)) {
        case IPPROTO_TCP:
            ++c.tcp;
            break;
        case IPPROTO_UDP:
            ++c.udp;
            break;
        case IPPROTO_ICMP:
            ++c.icmp;
            break;
        default:
            ++c.other;
    }
    return MNL_CB_OK;
}

}  // namespace

Conntrack::Conntrack()
    : sock_(mnl_socket_open(NETLINK_NETFILTER)), seq_(static_cast<uint32_t>(time(nullptr))) {
    if (!sock_) {
        throw ConntrackError(std::string("opening a ctnetlink socket: ") + std::strerror(errno));
    }
    if (mnl_socket_bind(sock_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        throw ConntrackError(std::string("binding a ctnetlink socket: ") + std::strerror(errno));
    }
    port_id_ = mnl_socket_get_portid(sock_.get());
    int fd = mnl_socket_get_fd(sock_.get());
    // A dump is paced by our reads, so the buffer only has to hold what the kernel sends ahead;
    // a larger one lets it fill bigger messages (fewer walks of the hash table).
    int size = static_cast<int>(kReceiveBuffer);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    // A kernel that stops answering must not hang the daemon.
    timeval timeout{30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
}

Conntrack::~Conntrack() = default;

std::map<Ipv4Address, ConntrackCounts> Conntrack::count_by_source(const Ipv4Prefix& within) {
    std::vector<char> buffer(kReceiveBuffer);
    nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
    nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = ++seq_;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = AF_INET;  // the kernel then sends IPv4 entries only
    nfg->version = NFNETLINK_V0;
    nfg->res_id = 0;

    // Answers to an earlier dump abandoned by an exception must not be counted in this one.
    while (recv(mnl_socket_get_fd(sock_.get()), buffer.data(), buffer.size(), MSG_DONTWAIT) > 0) {
    }
    if (mnl_socket_sendto(sock_.get(), nlh, nlh->nlmsg_len) < 0) {
        throw ConntrackError(std::string(kDumpContext) + ": " + std::strerror(errno));
    }
    std::map<Ipv4Address, ConntrackCounts> counts;
    Dump dump{within, &counts};
    while (true) {
        ssize_t n = mnl_socket_recvfrom(sock_.get(), buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == ENOBUFS) {
                throw ConntrackError(std::string(kDumpContext) +
                                     ": the kernel dropped part of the dump because the socket's "
                                     "receive buffer overflowed (ENOBUFS); the counts would be "
                                     "wrong, so none are returned");
            }
            throw ConntrackError(std::string(kDumpContext) + ": " + std::strerror(errno));
        }
        int rc =
            mnl_cb_run(buffer.data(), static_cast<size_t>(n), seq_, port_id_, count_entry, &dump);
        if (rc == MNL_CB_ERROR) {
            throw ConntrackError(std::string(kDumpContext) + ": " + std::strerror(errno));
        }
        if (rc == MNL_CB_STOP) {
            return counts;
        }
    }
}

}  // namespace xlat64
