#include "netlink/nft_nat_table.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <optional>

namespace xlat64 {
namespace {

constexpr const char* kBlocksSet = "blocks";
constexpr const char* kSessionsSet = "sessions";
constexpr const char* kExhaustedSet = "exhausted";
constexpr const char* kHairpinMap = "hairpin";
constexpr const char* kTrustedSet = "trusted_ifaces";
// The anonymous set { tcp, udp } of the track rule. A fixed name (not nft's "__set%d") so that a
// dumped rule compares equal to the one built here.
constexpr const char* kHairpinProtocols = "__set0";
constexpr const char* kPrerouting = "prerouting";
constexpr const char* kPostrouting = "postrouting";
constexpr const char* kTrack = "track";
// Set ids tie a rule to a set created in the same batch.
constexpr uint32_t kBlocksSetId = 1;
constexpr uint32_t kSessionsSetId = 2;
constexpr uint32_t kExhaustedSetId = 3;
constexpr uint32_t kHairpinMapId = 4;
constexpr uint32_t kHairpinProtocolsId = 5;
constexpr uint32_t kTrustedSetId = 6;
// nft's datatype numbers (ipv4_addr = 7, inet_proto = 12, inet_service = 13, iface_index = 20; a
// concatenation packs them 6 bits apart), so `nft list` shows the sets in its own words. The
// kernel only checks the lengths.
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeInetProto = 12;
constexpr uint32_t kTypeInetService = 13;
constexpr uint32_t kTypeIfaceIndex = 20;
constexpr uint32_t kTypeConcatAddrService = kTypeIpv4Addr << 6 | kTypeInetService;
constexpr uint32_t kTypeConcatAddrProto = kTypeIpv4Addr << 6 | kTypeInetProto;
constexpr uint32_t kTypeConcatAddrProtoService =
    (kTypeIpv4Addr << 12) | (kTypeInetProto << 6) | kTypeInetService;
// Map data: address . port, then address . port again for the top of the range, each field in
// its own 32-bit register (see nat_expr).
constexpr uint32_t kBlockDataLen = 16;
// Concatenations take a 32-bit register per field: address . protocol is 8 bytes, address .
// protocol . port 12, address . port 8.
constexpr uint32_t kAddrProtoLen = 8;
constexpr uint32_t kAddrProtoPortLen = 12;
constexpr uint32_t kAddrPortLen = 8;
// Sizes and timeouts of the dynamic sets. sessions: one element per (internal block, protocol)
// with live connections, removed by the kernel when its count drops to zero. exhausted: one per
// (block, protocol) refused in the last hour, so the daemon can log an exhaustion once and count
// refusals per subscriber. hairpin: one per public address . protocol . port in use; like
// sessions, each element counts the connections behind it and the kernel removes it when the
// last one is gone, so it needs no timeout and no refresh by the packets of its flows.
constexpr uint32_t kSessionsSize = 1048576;
constexpr uint32_t kExhaustedSize = 65536;
constexpr uint64_t kExhaustedTimeoutMs = 3600 * 1000;
constexpr uint32_t kHairpinSize = 1048576;
// An element nest must fit the u16 length of its NFTA_SET_ELEM_LIST_ELEMENTS attribute.
constexpr uint32_t kMaxElementsMessage = 48 * 1024;
constexpr size_t kScratchSize = 64 * 1024;

// libnftnl's free functions take const pointers for some types and not for others.
template <auto Free>
struct Freer {
    template <typename T>
    void operator()(T* p) const {
        Free(p);
    }
};
using TablePtr = std::unique_ptr<nftnl_table, Freer<nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, Freer<nftnl_chain_free>>;
using SetPtr = std::unique_ptr<nftnl_set, Freer<nftnl_set_free>>;
using ElemPtr = std::unique_ptr<nftnl_set_elem, Freer<nftnl_set_elem_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, Freer<nftnl_rule_free>>;
using ExprPtr = std::unique_ptr<nftnl_expr, Freer<nftnl_expr_free>>;
struct UdataFree {
    void operator()(nftnl_udata_buf* b) const { nftnl_udata_buf_free(b); }
};
using UdataPtr = std::unique_ptr<nftnl_udata_buf, UdataFree>;

template <typename Ptr, typename Raw>
Ptr checked(Raw* raw) {
    if (raw == nullptr) {
        throw NftError("libnftnl: out of memory");
    }
    return Ptr(raw);
}

uint32_t to_u32(const Ipv4Address& a) {
    return uint32_t{a[0]} << 24 | uint32_t{a[1]} << 16 | uint32_t{a[2]} << 8 | a[3];
}

Ipv4Address from_u32(uint32_t v) {
    return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
            static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// ---- batches -------------------------------------------------------------------------------

// Discards answers left over from an earlier exchange that ended in an exception, so they are
// not taken for answers to the next one.
void drain(NftSocket& sock) {
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
    while (recv(mnl_socket_get_fd(sock.get()), buffer.data(), buffer.size(), MSG_DONTWAIT) > 0) {
    }
}

// One message of a batch, with what to say if the kernel refuses it.
struct Sent {
    uint32_t seq;
    std::string context;
    // For element messages: each element's attribute offset in the message and its description,
    // so an ext-ack offset names the element the kernel refused.
    std::vector<std::pair<uint32_t, std::string>> elements;
};

class Batch {
  public:
    explicit Batch(NftSocket& sock) : sock_(sock), scratch_(kScratchSize) {
        nftnl_batch_begin(scratch_.data(), begin_seq_ = sock_.next_seq());
        append();
    }

    // A fresh message in the scratch buffer; commit() moves it into the batch.
    nlmsghdr* start(uint16_t type, uint16_t flags) {
        std::fill(scratch_.begin(), scratch_.end(), 0);
        seq_ = sock_.next_seq();
        return nftnl_nlmsg_build_hdr(scratch_.data(), type, NFPROTO_IPV4, flags | NLM_F_ACK, seq_);
    }
    void commit(std::string context, std::vector<std::pair<uint32_t, std::string>> elements = {}) {
        append();
        sent_.push_back({seq_, std::move(context), std::move(elements)});
    }
    char* scratch() { return scratch_.data(); }
    bool empty() const { return sent_.empty(); }

    // Sends the batch and waits for every acknowledgement; throws on the first refusal.
    void send();

  private:
    void append() {
        auto* nlh = reinterpret_cast<nlmsghdr*>(scratch_.data());
        data_.insert(data_.end(), scratch_.data(), scratch_.data() + nlh->nlmsg_len);
    }
    std::string explain(const nlmsghdr* nlh, const nlmsgerr* err) const;
    void receive_acks();

    NftSocket& sock_;
    std::vector<char> scratch_;
    std::vector<char> data_;
    std::vector<Sent> sent_;
    uint32_t begin_seq_ = 0;
    uint32_t seq_ = 0;
};

struct ExtAck {
    std::string message;
    std::optional<uint32_t> offset;
};

ExtAck parse_ext_ack(const nlmsghdr* nlh, const nlmsgerr* err) {
    ExtAck ack;
    if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) {
        return ack;
    }
    size_t offset = sizeof(nlmsgerr);
    if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
        offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
    }
    mnl_attr_parse(
        nlh, static_cast<unsigned>(offset),
        [](const nlattr* attr, void* data) {
            auto* out = static_cast<ExtAck*>(data);
            if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG) {
                out->message = mnl_attr_get_str(attr);
            } else if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_OFFS) {
                out->offset = mnl_attr_get_u32(attr);
            }
            return MNL_CB_OK;
        },
        &ack);
    return ack;
}

std::string Batch::explain(const nlmsghdr* nlh, const nlmsgerr* err) const {
    ExtAck ack = parse_ext_ack(nlh, err);
    std::string reason = std::strerror(-err->error);
    if (!ack.message.empty()) {
        reason += " (" + ack.message + ")";
    }
    auto it = std::find_if(sent_.begin(), sent_.end(),
                           [&](const Sent& s) { return s.seq == err->msg.nlmsg_seq; });
    if (it == sent_.end()) {
        return "committing the nftables batch: " + reason;
    }
    if (ack.offset) {
        // The element whose attribute holds the offset: the last one starting at or before it.
        const std::pair<uint32_t, std::string>* found = nullptr;
        for (const auto& element : it->elements) {
            if (element.first <= *ack.offset) {
                found = &element;
            }
        }
        if (found) {
            return found->second + ": " + reason;
        }
    }
    return it->context + ": " + reason;
}

void Batch::send() {
    nftnl_batch_end(scratch_.data(), sock_.next_seq());
    append();
    // A batch is one sendmsg: the socket's send buffer must hold all of it (nft does the same).
    int size = static_cast<int>(std::min<size_t>(data_.size() + 4096, INT32_MAX / 2));
    setsockopt(mnl_socket_get_fd(sock_.get()), SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
    // Every message is acknowledged, and the kernel queues all the acknowledgements before we
    // read one: the receive buffer must hold them all (an acknowledgement's buffer costs about a
    // kilobyte of the socket's budget), or the kernel drops them and reports ENOBUFS (found with
    // a million blocks by the control-plane benchmark).
    int receive = static_cast<int>(std::min<size_t>((sent_.size() + 16) * 2048, INT32_MAX / 2));
    setsockopt(mnl_socket_get_fd(sock_.get()), SOL_SOCKET, SO_RCVBUFFORCE, &receive,
               sizeof(receive));
    drain(sock_);
    if (mnl_socket_sendto(sock_.get(), data_.data(), data_.size()) < 0) {
        throw NftError(std::string("sending an nftables batch of ") + std::to_string(data_.size()) +
                       " bytes: " + std::strerror(errno));
    }
    receive_acks();
}

void Batch::receive_acks() {
    size_t pending = sent_.size();
    std::string failure;
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE * 4);
    while (pending > 0) {
        ssize_t n = mnl_socket_recvfrom(sock_.get(), buffer.data(), buffer.size());
        if (n < 0) {
            throw NftError(std::string("waiting for the kernel's answer to an nftables batch: ") +
                           std::strerror(errno));
        }
        auto* nlh = reinterpret_cast<const nlmsghdr*>(buffer.data());
        for (int len = static_cast<int>(n); mnl_nlmsg_ok(nlh, len);
             nlh = mnl_nlmsg_next(nlh, &len)) {
            if (nlh->nlmsg_type != NLMSG_ERROR) {
                continue;
            }
            auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
            if (err->error != 0 && failure.empty()) {
                failure = explain(nlh, err);
            }
            if (err->msg.nlmsg_seq == begin_seq_) {
                // The batch as a whole was refused (permission, commit): the kernel may send no
                // more answers, so stop here.
                if (err->error != 0) {
                    throw NftError(failure);
                }
                continue;
            }
            --pending;
        }
    }
    if (!failure.empty()) {
        throw NftError(failure);
    }
}

// ---- dumps and gets ---------------------------------------------------------------------------

using MessageHandler = std::function<void(const nlmsghdr*)>;

// Sends one request and hands every answer to HANDLER; ENOENT is returned, other errors thrown.
int request(NftSocket& sock, const std::vector<char>& message, const std::string& context,
            const MessageHandler& handler) {
    auto* nlh = reinterpret_cast<const nlmsghdr*>(message.data());
    drain(sock);
    if (mnl_socket_sendto(sock.get(), nlh, nlh->nlmsg_len) < 0) {
        throw NftError(context + ": " + std::strerror(errno));
    }
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE * 4);
    auto callback = [](const nlmsghdr* msg, void* data) {
        (*static_cast<const MessageHandler*>(data))(msg);
        return MNL_CB_OK;
    };
    while (true) {
        ssize_t n = mnl_socket_recvfrom(sock.get(), buffer.data(), buffer.size());
        if (n < 0) {
            throw NftError(context + ": " + std::strerror(errno));
        }
        int rc = mnl_cb_run(buffer.data(), static_cast<size_t>(n), nlh->nlmsg_seq, sock.port_id(),
                            callback, const_cast<MessageHandler*>(&handler));
        if (rc == MNL_CB_ERROR) {
            if (errno == ENOENT) {
                return ENOENT;
            }
            throw NftError(context + ": " + std::strerror(errno));
        }
        if (rc == MNL_CB_STOP) {
            return 0;
        }
    }
}

template <typename Build>
std::vector<char> build_request(NftSocket& sock, uint16_t type, uint16_t flags, Build&& build) {
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
    nlmsghdr* nlh =
        nftnl_nlmsg_build_hdr(buffer.data(), type, NFPROTO_IPV4, flags, sock.next_seq());
    build(nlh);
    return buffer;
}

// ---- the objects of the table ------------------------------------------------------------------

UdataPtr table_comment() {
    auto buf = checked<UdataPtr>(nftnl_udata_buf_alloc(256));
    nftnl_udata_put_strz(buf.get(), NFTNL_UDATA_TABLE_COMMENT, kNftTableComment);
    return buf;
}

TablePtr table_object(const std::string& name, bool with_comment) {
    auto t = checked<TablePtr>(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
    nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_IPV4);
    if (with_comment) {
        UdataPtr comment = table_comment();
        nftnl_table_set_data(t.get(), NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(comment.get()),
                             nftnl_udata_buf_len(comment.get()));
    }
    return t;
}

SetPtr set_object(const std::string& table, const char* name) {
    auto s = checked<SetPtr>(nftnl_set_alloc());
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, name);
    nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_IPV4);
    return s;
}

SetPtr blocks_set_object(const std::string& table) {
    return set_object(table, kBlocksSet);
}

struct SetSpec {
    const char* name;
    uint32_t id;
    uint32_t flags;
    uint32_t key_type;
    uint32_t key_len;
    uint32_t data_type = 0;
    uint32_t data_len = 0;
    uint32_t size = 0;
    uint64_t timeout_ms = 0;
    bool counter = false;
};

SetPtr set_definition(const std::string& table, const SetSpec& spec) {
    SetPtr s = set_object(table, spec.name);
    nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, spec.flags);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, spec.key_type);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, spec.key_len);
    if (spec.flags & NFT_SET_MAP) {
        nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, spec.data_type);
        nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, spec.data_len);
    }
    nftnl_set_set_u32(s.get(), NFTNL_SET_ID, spec.id);
    if (spec.size != 0) {
        nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, spec.size);
    }
    if (spec.timeout_ms != 0) {
        nftnl_set_set_u64(s.get(), NFTNL_SET_TIMEOUT, spec.timeout_ms);
    }
    if (spec.counter) {
        // A counter in every element: the kernel gives each new element a copy of it, also to
        // elements a rule adds from the packet path (dynset clones the set's expressions when
        // it has none of its own, since Linux 5.11).
        nftnl_set_add_expr(s.get(), checked<ExprPtr>(nftnl_expr_alloc("counter")).release());
    }
    return s;
}

// Blocks of one internal address each (hosts_per_subscriber 1, the common case) are keys, not
// intervals: a hash map takes one element per block instead of an interval's two and inserts
// without an rbtree walk, which at a million blocks is seconds of a reboot's restore.
bool blocks_are_addresses(const NftNatShape& shape) {
    return shape.block_len == 32;
}

SetPtr blocks_set_definition(const std::string& table, const NftNatShape& shape) {
    SetPtr s = set_definition(
        table, {.name = kBlocksSet,
                .id = kBlocksSetId,
                .flags = blocks_are_addresses(shape) ? uint32_t{NFT_SET_MAP}
                                                     : uint32_t{NFT_SET_INTERVAL | NFT_SET_MAP},
                .key_type = kTypeIpv4Addr,
                .key_len = 4,
                .data_type = kTypeConcatAddrService,
                .data_len = kBlockDataLen,
                .counter = shape.session_counters});
    // How nft describes such a map, so `nft list` prints "interval ipv4_addr . inet_service"
    // rather than raw bytes: key in network byte order, data an interval.
    auto udata = checked<UdataPtr>(nftnl_udata_buf_alloc(64));
    nftnl_udata_put_u32(udata.get(), NFTNL_UDATA_SET_KEYBYTEORDER, 2 /* big endian */);
    nftnl_udata_put_u32(udata.get(), NFTNL_UDATA_SET_DATABYTEORDER, 0);
    nftnl_udata_put_u32(udata.get(), NFTNL_UDATA_SET_DATA_INTERVAL, 1);
    nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(udata.get()),
                       nftnl_udata_buf_len(udata.get()));
    return s;
}

// An interface index as meta iif loads it: 4 bytes in host byte order.
ElemPtr ifindex_element(uint32_t ifindex) {
    auto e = checked<ElemPtr>(nftnl_set_elem_alloc());
    nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, &ifindex, sizeof(ifindex));
    return e;
}

// An interface name as meta iifname loads it: IFNAMSIZ bytes, zero-padded.
std::array<char, IFNAMSIZ> interface_name_key(const std::string& name) {
    std::array<char, IFNAMSIZ> key{};
    std::memcpy(key.data(), name.data(), std::min(name.size(), key.size() - 1));
    return key;
}

// The interfaces of the ingress fast path that an internal source may arrive on, by index, with
// the shape's indexes as its elements. A set rather than indexes in the rule, so that a change
// (an interface listed, re-created, its program attached) is a change of elements and never a
// rebuild of the table.
SetPtr trusted_set_definition(const std::string& table, const NftNatShape& shape) {
    SetPtr s = set_definition(table, {.name = kTrustedSet,
                                      .id = kTrustedSetId,
                                      .flags = 0,
                                      .key_type = kTypeIfaceIndex,
                                      .key_len = sizeof(uint32_t)});
    // nft's type iface_index is a number in host byte order; with the byte order in the set's
    // description `nft list` prints each element as its interface's name (or as the number
    // when no interface has it any more) rather than as swapped bytes.
    auto udata = checked<UdataPtr>(nftnl_udata_buf_alloc(16));
    nftnl_udata_put_u32(udata.get(), NFTNL_UDATA_SET_KEYBYTEORDER, 1 /* host */);
    nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(udata.get()),
                       nftnl_udata_buf_len(udata.get()));
    for (uint32_t ifindex : shape.trusted_ifindexes) {
        nftnl_set_elem_add(s.get(), ifindex_element(ifindex).release());
    }
    return s;
}

bool has_elements(nftnl_set* s) {
    int count = 0;
    nftnl_set_elem_foreach(
        s,
        [](nftnl_set_elem*, void* data) {
            ++*static_cast<int*>(data);
            return 0;
        },
        &count);
    return count > 0;
}

// All the table's sets, in creation order. The anonymous { tcp, udp } and trusted_ifaces come
// with their elements.
std::vector<SetPtr> set_definitions(const std::string& table, const NftNatShape& shape) {
    std::vector<SetPtr> sets;
    sets.push_back(blocks_set_definition(table, shape));
    sets.push_back(set_definition(table, {.name = kSessionsSet,
                                          .id = kSessionsSetId,
                                          .flags = NFT_SET_EVAL,
                                          .key_type = kTypeConcatAddrProto,
                                          .key_len = kAddrProtoLen,
                                          .size = kSessionsSize}));
    sets.push_back(set_definition(table, {.name = kExhaustedSet,
                                          .id = kExhaustedSetId,
                                          .flags = NFT_SET_EVAL | NFT_SET_TIMEOUT,
                                          .key_type = kTypeConcatAddrProto,
                                          .key_len = kAddrProtoLen,
                                          .size = kExhaustedSize,
                                          .timeout_ms = kExhaustedTimeoutMs,
                                          .counter = true}));
    sets.push_back(set_definition(table, {.name = kHairpinMap,
                                          .id = kHairpinMapId,
                                          .flags = NFT_SET_MAP | NFT_SET_EVAL,
                                          .key_type = kTypeConcatAddrProtoService,
                                          .key_len = kAddrProtoPortLen,
                                          .data_type = kTypeConcatAddrService,
                                          .data_len = kAddrPortLen,
                                          .size = kHairpinSize}));
    SetPtr protocols = set_definition(table, {.name = kHairpinProtocols,
                                              .id = kHairpinProtocolsId,
                                              .flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT,
                                              .key_type = kTypeInetProto,
                                              .key_len = 1,
                                              .size = 2});
    for (uint8_t proto : {uint8_t{IPPROTO_TCP}, uint8_t{IPPROTO_UDP}}) {
        auto e = checked<ElemPtr>(nftnl_set_elem_alloc());
        nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, &proto, 1);
        nftnl_set_elem_add(protocols.get(), e.release());
    }
    sets.push_back(std::move(protocols));
    sets.push_back(trusted_set_definition(table, shape));
    return sets;
}

ChainPtr chain_definition(const std::string& table, const char* name, const char* type,
                          uint32_t hook, int32_t priority) {
    auto c = checked<ChainPtr>(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, hook);
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, priority);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, type);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    return c;
}

std::vector<ChainPtr> chain_definitions(const std::string& table) {
    std::vector<ChainPtr> chains;
    chains.push_back(
        chain_definition(table, kPrerouting, "nat", NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST));
    chains.push_back(
        chain_definition(table, kPostrouting, "nat", NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC));
    // After SNAT, so the connection's reply tuple holds the public address and port it got.
    // The table's only chain that sees every packet (nat chains see a connection's first packet
    // only), so its rule tests the cheapest thing first.
    chains.push_back(
        chain_definition(table, kTrack, "filter", NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC + 1));
    return chains;
}

// ---- rules ---------------------------------------------------------------------------------

void add_expr(nftnl_expr* parent, nftnl_rule* rule, const char* name,
              const std::function<void(nftnl_expr*)>& configure) {
    auto e = checked<ExprPtr>(nftnl_expr_alloc(name));
    configure(e.get());
    if (parent != nullptr) {
        nftnl_expr_add_expr(parent, NFTNL_EXPR_DYNSET_EXPRESSIONS, e.release());
    } else {
        nftnl_rule_add_expr(rule, e.release());
    }
}

void add_expr(nftnl_rule* rule, const char* name,
              const std::function<void(nftnl_expr*)>& configure) {
    add_expr(nullptr, rule, name, configure);
}

constexpr uint32_t kIphdrSaddr = 12;  // struct iphdr
constexpr uint32_t kIphdrDaddr = 16;

void load_payload(nftnl_rule* r, uint32_t base, uint32_t offset, uint32_t len, uint32_t reg) {
    add_expr(r, "payload", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, reg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    });
}

// lookup of the key in SREG in SET: with DREG a map, whose data it loads; with INVERT a match
// when the key is absent.
void lookup(nftnl_rule* r, uint32_t sreg, const char* set, uint32_t set_id,
            std::optional<uint32_t> dreg = std::nullopt, bool invert = false) {
    add_expr(r, "lookup", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
        if (dreg) {
            nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, *dreg);
        }
        nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
        if (invert) {
            nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
        }
    });
}

void load_saddr(nftnl_rule* r, uint32_t reg = NFT_REG32_00) {
    load_payload(r, NFT_PAYLOAD_NETWORK_HEADER, kIphdrSaddr, 4, reg);
}

void load_meta_l4proto(nftnl_rule* r, uint32_t reg) {
    add_expr(r, "meta", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_L4PROTO);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, reg);
    });
}

void load_ct(nftnl_rule* r, uint32_t key, std::optional<uint8_t> direction, uint32_t reg) {
    add_expr(r, "ct", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
        if (direction) {
            nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, *direction);
        }
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, reg);
    });
}

uint32_t prefix_mask(uint8_t len) {
    return len == 0 ? 0 : ~uint32_t{0} << (32 - len);
}

// reg = reg & MASK, the 4 bytes of MASK as they are in memory.
void and_register(nftnl_rule* r, uint32_t reg, uint32_t mask) {
    uint32_t zero = 0;
    add_expr(r, "bitwise", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 4);
        nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
        nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, 4);
    });
}

// reg = reg & the netmask of LEN (an IPv4 address in network order).
void mask_register(nftnl_rule* r, uint32_t reg, uint8_t len) {
    and_register(r, reg, htonl(prefix_mask(len)));
}

void compare_eq(nftnl_rule* r, uint32_t reg, const void* data, uint32_t len) {
    add_expr(r, "cmp", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, reg);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
    });
}

// The conntrack status bits BITS in REG (loaded with NFT_CT_STATUS, host byte order) are all
// set (SET) or all clear.
void match_status(nftnl_rule* r, uint32_t reg, uint32_t bits, bool set) {
    and_register(r, reg, bits);
    const uint32_t zero = 0;
    compare_eq(r, reg, set ? &bits : &zero, 4);
}

// The address in REG (already loaded) lies in POOL.
void match_pool(nftnl_rule* r, uint32_t reg, const Ipv4Prefix& pool) {
    mask_register(r, reg, pool.len);
    uint32_t net = htonl(to_u32(pool.addr) & prefix_mask(pool.len));
    compare_eq(r, reg, &net, 4);
}

void counter_verdict(nftnl_rule* r, bool counted, uint32_t verdict) {
    if (counted) {
        add_expr(r, "counter", [](nftnl_expr*) {});
    }
    add_expr(r, "immediate", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, verdict);
    });
}

RulePtr rule_object(const std::string& table, const char* chain) {
    auto r = checked<RulePtr>(nftnl_rule_alloc());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain);
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_IPV4);
    return r;
}

// prerouting: ip saddr POOL dnat ip to ip daddr . meta l4proto . th dport map @hairpin
//
// Hairpinning (RFC 6146 section 3.8, RFC 4787 REQ-9): a subscriber reaching another one through
// the other's public address and port is sent to that one's internal address and port; the
// postrouting chain then SNATs it like any other flow, so the receiver sees the sender's public
// address and port, and the replies go back through conntrack. The key is the destination
// address . protocol . port in three registers, the data internal address . port in two.
RulePtr hairpin_dnat_rule(const std::string& table, const NftNatShape& shape) {
    RulePtr r = rule_object(table, kPrerouting);
    load_saddr(r.get());
    match_pool(r.get(), NFT_REG32_00, shape.internal_pool);
    load_payload(r.get(), NFT_PAYLOAD_NETWORK_HEADER, kIphdrDaddr, 4, NFT_REG32_00);
    load_meta_l4proto(r.get(), NFT_REG32_01);
    load_payload(r.get(), NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_02);  // th dport
    lookup(r.get(), NFT_REG32_00, kHairpinMap, kHairpinMapId, NFT_REG32_00);
    // The maxima equal the minima (one address, one port): stated here because the kernel
    // reports them so, which keeps a dumped rule equal to this one.
    add_expr(r.get(), "nat", [](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG32_00);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MAX, NFT_REG32_00);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG32_01);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MAX, NFT_REG32_01);
    });
    return r;
}

// postrouting: ip saddr POOL add @sessions { ip saddr & BLOCK_MASK . meta l4proto ct count over
// BLOCK_PORTS } update @exhausted { ip saddr & BLOCK_MASK . meta l4proto } drop
//
// Port exhaustion, per subscriber and protocol: the nat chain sees each connection's first
// packet only, so the connlimit in each (internal block, protocol) element counts the block's
// live connections of that protocol (conntrack forgets closed ones), and connection BLOCK_PORTS
// + 1 is refused before it is NATed. The exhausted set remembers who was refused, with a counter
// of refused packets per element. TCP, UDP and ICMP are counted apart: each has its own ports.
RulePtr sessions_rule(const std::string& table, const NftNatShape& shape) {
    RulePtr r = rule_object(table, kPostrouting);
    load_saddr(r.get());
    match_pool(r.get(), NFT_REG32_00, shape.internal_pool);
    load_saddr(r.get());
    mask_register(r.get(), NFT_REG32_00, shape.block_len);
    load_meta_l4proto(r.get(), NFT_REG32_01);
    add_expr(r.get(), "dynset", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_ADD);
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG32_00);
        nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, kSessionsSet);
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SET_ID, kSessionsSetId);
        add_expr(e, nullptr, "connlimit", [&](nftnl_expr* limit) {
            nftnl_expr_set_u32(limit, NFTNL_EXPR_CONNLIMIT_COUNT, shape.block_ports);
            nftnl_expr_set_u32(limit, NFTNL_EXPR_CONNLIMIT_FLAGS, NFT_CONNLIMIT_F_INV);
        });
    });
    // The key is still in its registers: a dynset only reads them.
    add_expr(r.get(), "dynset", [](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG32_00);
        nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, kExhaustedSet);
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SET_ID, kExhaustedSetId);
    });
    counter_verdict(r.get(), false, NF_DROP);
    return r;
}

// snat ip to ip saddr map @blocks. The lookup copies the 16 data bytes into registers
// 32_00..32_03: address, first port, address again, last port.
//
// NF_NAT_RANGE_PROTO_OFFSET makes the kernel choose public port = first port + (internal port
// mod block size), trying the next ports only on a clash, instead of a random port. So the same
// internal address:port gets the same public port whatever the destination (endpoint-independent
// mapping, RFC 4787 REQ-1, RFC 5382 REQ-1), and with power-of-two blocks port parity and pairs
// survive (RFC 4787 sections 4.2.2, 4.2.3). ICMP echo identifiers are mapped like ports.
RulePtr snat_rule(const std::string& table) {
    RulePtr r = rule_object(table, kPostrouting);
    load_saddr(r.get(), NFT_REG_1);
    lookup(r.get(), NFT_REG_1, kBlocksSet, kBlocksSetId, NFT_REG_1);
    add_expr(r.get(), "nat", [](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_SNAT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG32_00);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG32_01);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MAX, NFT_REG32_02);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MAX, NFT_REG32_03);
        nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FLAGS, NF_NAT_RANGE_PROTO_OFFSET);
    });
    return r;
}

// ip saddr INTERNAL_POOL counter drop: reached only by internal sources without a block.
RulePtr unmapped_drop_rule(const std::string& table, const NftNatShape& shape) {
    RulePtr r = rule_object(table, kPostrouting);
    load_saddr(r.get());
    match_pool(r.get(), NFT_REG32_00, shape.internal_pool);
    counter_verdict(r.get(), true, NF_DROP);
    return r;
}

// track: ct status & confirmed == 0 ct original ip saddr POOL meta l4proto { tcp, udp } add
// @hairpin { ct reply ip daddr . meta l4proto . ct reply proto-dst ct count over 0 : ct original
// ip saddr . ct original proto-src }
//
// Learns the hairpin map from the connections themselves: after SNAT the reply tuple's
// destination is the public address and port the flow got. Only a connection's first packet
// does it (conntrack confirms a connection after the last postrouting hook, so here only its
// first packet sees it unconfirmed): every other packet stops at the first test, three
// expressions that read the packet's conntrack entry and no set. The element lives as long as
// the connections behind it, not by a timeout refreshed per packet: its connlimit ("ct count")
// holds the connections that used it, and the kernel's set garbage collector (about once a
// second) removes an element whose connections are all gone (like the sessions set's). So a
// mapping in use keeps its element however rarely its flows send, and nothing in userspace has
// to refresh or collect anything. When two connections of a block share a public port (two
// hosts, or two internal ports an offset apart, towards different destinations), the first
// one's internal address and port stay in the element while either lives.
RulePtr track_rule(const std::string& table, const NftNatShape& shape) {
    RulePtr r = rule_object(table, kTrack);
    load_ct(r.get(), NFT_CT_STATUS, std::nullopt, NFT_REG32_00);
    match_status(r.get(), NFT_REG32_00, IPS_CONFIRMED, false);
    load_ct(r.get(), NFT_CT_SRC_IP, IP_CT_DIR_ORIGINAL, NFT_REG32_00);
    match_pool(r.get(), NFT_REG32_00, shape.internal_pool);
    load_meta_l4proto(r.get(), NFT_REG32_00);
    lookup(r.get(), NFT_REG32_00, kHairpinProtocols, kHairpinProtocolsId);
    load_ct(r.get(), NFT_CT_DST_IP, IP_CT_DIR_REPLY, NFT_REG32_00);
    load_meta_l4proto(r.get(), NFT_REG32_01);
    load_ct(r.get(), NFT_CT_PROTO_DST, IP_CT_DIR_REPLY, NFT_REG32_02);
    load_ct(r.get(), NFT_CT_SRC_IP, IP_CT_DIR_ORIGINAL, NFT_REG32_04);
    load_ct(r.get(), NFT_CT_PROTO_SRC, IP_CT_DIR_ORIGINAL, NFT_REG32_05);
    add_expr(r.get(), "dynset", [](nftnl_expr* e) {
        // "add", not "update": without a timeout there is nothing to refresh.
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_ADD);
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG32_00);
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_DATA, NFT_REG32_04);
        nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, kHairpinMap);
        nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SET_ID, kHairpinMapId);
        // "ct count over 0": true once the connection is counted, so the rule never stops here.
        add_expr(e, nullptr, "connlimit", [](nftnl_expr* limit) {
            nftnl_expr_set_u32(limit, NFTNL_EXPR_CONNLIMIT_COUNT, 0);
            nftnl_expr_set_u32(limit, NFTNL_EXPR_CONNLIMIT_FLAGS, NFT_CONNLIMIT_F_INV);
        });
    });
    return r;
}

// prerouting: ip daddr POOL counter drop (after the hairpin DNAT rule)
//
// Internal addresses are reachable only as replies (conntrack de-NATs them in prerouting, so
// they travel in the reply direction) or as hairpin DNATs. Anything else towards the pool, such
// as someone outside sending to 100.64.x.y, is dropped and counted. A nat chain sees exactly the
// packets that need this test: a connection's first packet (replies and related ICMP errors
// never reach it), and every packet of an unsolicited flow, since a connection whose first
// packet was dropped is never confirmed and its next packet is a first packet again. A hairpin
// DNAT ends the chain before this rule. Earlier versions had the test in a filter chain at the
// forward hook, which every forwarded packet crossed.
RulePtr inbound_drop_rule(const std::string& table, const NftNatShape& shape) {
    RulePtr r = rule_object(table, kPrerouting);
    load_payload(r.get(), NFT_PAYLOAD_NETWORK_HEADER, kIphdrDaddr, 4, NFT_REG32_00);
    match_pool(r.get(), NFT_REG32_00, shape.internal_pool);
    counter_verdict(r.get(), true, NF_DROP);
    return r;
}

// prerouting, first: ip saddr POOL iifname != DEVICE meta iif != @trusted_ifaces counter drop
//
// A source in the internal pool is a subscriber's only when the translator made it: on the
// xlat64 device, or on an interface of the ingress fast path, whose program drops plain IPv4 from
// the pool (NftNatShape::trusted_device, trusted_ifindexes: the device by name, the fast path's
// interfaces by index while the program is on them). From any other interface it is spoofed, and
// loose reverse-path filtering (Debian's default) lets it through because the pool is routed into
// xlat64: postrouting would SNAT it to that subscriber's public address and port block, and the
// flow would be traced to them. First in the chain, so that no hairpin DNAT takes it elsewhere.
// Like inbound_drop_rule, it sees each new flow's first packet and every packet of a flow it
// dropped (never confirmed): that stops every new spoofed flow. Injecting into a subscriber's
// existing flow (conntrack takes it past the nat chains) needs the attacker to know that flow's
// internal address and port, which never leave the router.
RulePtr spoofed_source_drop_rule(const std::string& table, const NftNatShape& shape) {
    RulePtr r = rule_object(table, kPrerouting);
    load_saddr(r.get());
    match_pool(r.get(), NFT_REG32_00, shape.internal_pool);
    add_expr(r.get(), "meta", [](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_IIFNAME);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
    });
    const std::array<char, IFNAMSIZ> device = interface_name_key(shape.trusted_device);
    add_expr(r.get(), "cmp", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_NEQ);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, device.data(), device.size());
    });
    add_expr(r.get(), "meta", [](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_IIF);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
    });
    lookup(r.get(), NFT_REG_1, kTrustedSet, kTrustedSetId, std::nullopt, true);
    counter_verdict(r.get(), true, NF_DROP);
    return r;
}

std::vector<RulePtr> rule_definitions(const std::string& table, const NftNatShape& shape) {
    std::vector<RulePtr> rules;
    rules.push_back(spoofed_source_drop_rule(table, shape));
    rules.push_back(hairpin_dnat_rule(table, shape));
    rules.push_back(inbound_drop_rule(table, shape));
    rules.push_back(sessions_rule(table, shape));
    rules.push_back(snat_rule(table));
    rules.push_back(unmapped_drop_rule(table, shape));
    rules.push_back(track_rule(table, shape));
    return rules;
}

// ---- comparing what the kernel holds with what this version builds -------------------------

// The kernel reports registers in its own numbering: the first 32-bit register of a 128-bit one
// as the 128-bit one (NFT_REG32_00 as NFT_REG_1). Both name the same bytes.
uint32_t register_offset(uint32_t reg) {
    return reg < NFT_REG32_00 ? reg * 4 : reg - NFT_REG32_00 + 4;
}

enum class FieldKind { u8, u32, u64, reg, bytes, str };
struct Field {
    uint16_t attr;
    FieldKind kind;
};

// What identifies an expression's behaviour: the attributes that matter, with counters' values,
// set ids and the flags the kernel adds itself left out. An absent number counts as 0 (the
// kernel reports some zero attributes we never send).
const std::map<std::string, std::vector<Field>>& signature_fields() {
    using enum FieldKind;
    static const std::map<std::string, std::vector<Field>> fields = {
        {"payload",
         {{NFTNL_EXPR_PAYLOAD_DREG, reg},
          {NFTNL_EXPR_PAYLOAD_BASE, u32},
          {NFTNL_EXPR_PAYLOAD_OFFSET, u32},
          {NFTNL_EXPR_PAYLOAD_LEN, u32}}},
        {"bitwise",
         {{NFTNL_EXPR_BITWISE_SREG, reg},
          {NFTNL_EXPR_BITWISE_DREG, reg},
          {NFTNL_EXPR_BITWISE_LEN, u32},
          {NFTNL_EXPR_BITWISE_MASK, bytes},
          {NFTNL_EXPR_BITWISE_XOR, bytes}}},
        {"cmp",
         {{NFTNL_EXPR_CMP_SREG, reg}, {NFTNL_EXPR_CMP_OP, u32}, {NFTNL_EXPR_CMP_DATA, bytes}}},
        {"meta", {{NFTNL_EXPR_META_KEY, u32}, {NFTNL_EXPR_META_DREG, reg}}},
        {"ct", {{NFTNL_EXPR_CT_KEY, u32}, {NFTNL_EXPR_CT_DREG, reg}, {NFTNL_EXPR_CT_DIR, u8}}},
        {"lookup",
         {{NFTNL_EXPR_LOOKUP_SREG, reg},
          {NFTNL_EXPR_LOOKUP_DREG, reg},
          {NFTNL_EXPR_LOOKUP_SET, str},
          {NFTNL_EXPR_LOOKUP_FLAGS, u32}}},
        {"dynset",
         {{NFTNL_EXPR_DYNSET_SREG_KEY, reg},
          {NFTNL_EXPR_DYNSET_SREG_DATA, reg},
          {NFTNL_EXPR_DYNSET_OP, u32},
          {NFTNL_EXPR_DYNSET_SET_NAME, str},
          {NFTNL_EXPR_DYNSET_TIMEOUT, u64},
          {NFTNL_EXPR_DYNSET_FLAGS, u32}}},
        {"nat",
         {{NFTNL_EXPR_NAT_TYPE, u32},
          {NFTNL_EXPR_NAT_FAMILY, u32},
          {NFTNL_EXPR_NAT_REG_ADDR_MIN, reg},
          {NFTNL_EXPR_NAT_REG_ADDR_MAX, reg},
          {NFTNL_EXPR_NAT_REG_PROTO_MIN, reg},
          {NFTNL_EXPR_NAT_REG_PROTO_MAX, reg}}},
        {"immediate", {{NFTNL_EXPR_IMM_DREG, reg}, {NFTNL_EXPR_IMM_VERDICT, u32}}},
        {"connlimit", {{NFTNL_EXPR_CONNLIMIT_COUNT, u32}, {NFTNL_EXPR_CONNLIMIT_FLAGS, u32}}},
        {"counter", {}},
    };
    return fields;
}

void append_signature(std::string& out, const nftnl_expr* e);

int append_nested(nftnl_expr* e, void* data) {
    auto* out = static_cast<std::string*>(data);
    *out += "[";
    append_signature(*out, e);
    *out += "]";
    return 0;
}

void append_signature(std::string& out, const nftnl_expr* e) {
    std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    out += name;
    auto known = signature_fields().find(name);
    if (known == signature_fields().end()) {
        out += "?;";  // never built here: no adopted rule may contain it
        return;
    }
    for (const Field& f : known->second) {
        bool set = nftnl_expr_is_set(e, f.attr);
        out += ":";
        switch (f.kind) {
            case FieldKind::u8:
                out += std::to_string(set ? nftnl_expr_get_u8(e, f.attr) : 0);
                break;
            case FieldKind::u32:
                out += std::to_string(set ? nftnl_expr_get_u32(e, f.attr) : 0);
                break;
            case FieldKind::u64:
                out += std::to_string(set ? nftnl_expr_get_u64(e, f.attr) : 0);
                break;
            case FieldKind::reg:
                out += std::to_string(set ? register_offset(nftnl_expr_get_u32(e, f.attr)) : 0);
                break;
            case FieldKind::str:
                out += set ? nftnl_expr_get_str(e, f.attr) : "";
                break;
            case FieldKind::bytes: {
                uint32_t len = 0;
                auto* bytes =
                    static_cast<const uint8_t*>(set ? nftnl_expr_get(e, f.attr, &len) : nullptr);
                for (uint32_t i = 0; i < len; ++i) {
                    out += std::to_string(bytes[i]) + ".";
                }
                break;
            }
        }
    }
    if (name == "nat") {
        // The kernel adds the map-address and proto-specified bits itself.
        uint32_t flags = nftnl_expr_is_set(e, NFTNL_EXPR_NAT_FLAGS)
                             ? nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FLAGS)
                             : 0;
        out += ":" + std::to_string(flags & NF_NAT_RANGE_PROTO_OFFSET);
    } else if (name == "dynset") {
        // A dynset's own expressions (the connlimit); the kernel does not report those it
        // cloned from the set's definition.
        nftnl_expr_expr_foreach(e, append_nested, &out);
    }
    out += ";";
}

std::string rule_signature(nftnl_rule* rule) {
    std::string out = std::string(nftnl_rule_get_str(rule, NFTNL_RULE_CHAIN)) + ":";
    nftnl_expr_foreach(
        rule,
        [](nftnl_expr* e, void* data) {
            append_signature(*static_cast<std::string*>(data), e);
            return 0;
        },
        &out);
    return out;
}

std::string set_signature(nftnl_set* s) {
    auto u32 = [&](uint16_t attr) {
        return std::to_string(nftnl_set_is_set(s, attr) ? nftnl_set_get_u32(s, attr) : 0);
    };
    std::string sig = std::string(nftnl_set_get_str(s, NFTNL_SET_NAME)) + ":" +
                      u32(NFTNL_SET_FLAGS) + ":" + u32(NFTNL_SET_KEY_LEN) + ":" +
                      u32(NFTNL_SET_DATA_LEN) + ":" + u32(NFTNL_SET_DESC_SIZE) + ":" +
                      std::to_string(nftnl_set_is_set(s, NFTNL_SET_TIMEOUT)
                                         ? nftnl_set_get_u64(s, NFTNL_SET_TIMEOUT)
                                         : 0);
    nftnl_set_expr_foreach(
        s,
        [](nftnl_expr* e, void* data) {
            *static_cast<std::string*>(data) +=
                std::string(":") + nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
            return 0;
        },
        &sig);
    return sig;
}

std::string chain_signature(nftnl_chain* c) {
    auto u32 = [&](uint16_t attr) {
        return std::to_string(nftnl_chain_is_set(c, attr) ? nftnl_chain_get_u32(c, attr) : 0);
    };
    auto str = [&](uint16_t attr) {
        return std::string(nftnl_chain_is_set(c, attr) ? nftnl_chain_get_str(c, attr) : "");
    };
    std::string prio = nftnl_chain_is_set(c, NFTNL_CHAIN_PRIO)
                           ? std::to_string(nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO))
                           : "";
    return str(NFTNL_CHAIN_NAME) + ":" + str(NFTNL_CHAIN_TYPE) + ":" + u32(NFTNL_CHAIN_HOOKNUM) +
           ":" + prio + ":" + u32(NFTNL_CHAIN_POLICY);
}
// ---- elements ------------------------------------------------------------------------------

struct ElementSpec {
    Ipv4Address key{};
    bool interval_end = false;
    std::optional<NatBlock> data;  // start elements of an add carry the mapping
};

// An interval set holds a prefix as a start element and an end element one past its last
// address; a prefix reaching 255.255.255.255 has no end element. In a map of addresses
// (blocks_are_addresses) the start element is all there is.
std::vector<ElementSpec> interval_elements(const NatBlock& block, bool with_data, bool interval) {
    std::vector<ElementSpec> out;
    out.push_back({block.internal.addr, false, with_data ? std::optional(block) : std::nullopt});
    if (!interval) {
        return out;
    }
    uint64_t end =
        uint64_t{to_u32(block.internal.addr)} + (uint64_t{1} << (32 - block.internal.len));
    if (end <= UINT32_MAX) {
        out.push_back({from_u32(static_cast<uint32_t>(end)), true, std::nullopt});
    }
    return out;
}

ElemPtr element_object(const ElementSpec& spec) {
    auto e = checked<ElemPtr>(nftnl_set_elem_alloc());
    nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, spec.key.data(), 4);
    if (spec.interval_end) {
        nftnl_set_elem_set_u32(e.get(), NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
    }
    if (spec.data) {
        uint8_t data[kBlockDataLen] = {};
        uint16_t first = htons(spec.data->first_port);
        uint16_t last = htons(spec.data->last_port);
        std::memcpy(data, spec.data->public_address.data(), 4);
        std::memcpy(data + 4, &first, 2);
        std::memcpy(data + 8, spec.data->public_address.data(), 4);
        std::memcpy(data + 12, &last, 2);
        nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_DATA, data, kBlockDataLen);
    }
    return e;
}

// Appends NEWSETELEM or DELSETELEM messages for BLOCKS, each as large as an element nest allows.
void add_element_messages(Batch& batch, const std::string& table, const NftNatShape& shape,
                          uint16_t type, const std::vector<NatBlock>& blocks) {
    const bool interval = !blocks_are_addresses(shape);
    const bool adding = type == NFT_MSG_NEWSETELEM;
    const char* verb = adding ? "adding element " : "deleting element ";
    const std::string where = std::string(adding ? " to " : " from ") + table + "/" + kBlocksSet;
    size_t next = 0;
    while (next < blocks.size()) {
        nlmsghdr* nlh = batch.start(type, adding ? NLM_F_CREATE | NLM_F_EXCL : 0);
        mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table.c_str());
        mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, kBlocksSet);
        nlattr* nest = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
        std::vector<std::pair<uint32_t, std::string>> offsets;
        int index = 0;
        for (; next < blocks.size() && nlh->nlmsg_len < kMaxElementsMessage; ++next) {
            offsets.emplace_back(nlh->nlmsg_len, verb + to_string(blocks[next].internal) + where);
            for (const ElementSpec& spec : interval_elements(blocks[next], adding, interval)) {
                ElemPtr e = element_object(spec);
                nftnl_set_elem_nlmsg_build(nlh, e.get(), ++index);
            }
        }
        mnl_attr_nest_end(nlh, nest);
        std::string context = std::string(adding ? "adding " : "deleting ") +
                              std::to_string(offsets.size()) + " elements" + where;
        batch.commit(context, std::move(offsets));
    }
}

template <typename Object, typename Build>
void add_object_message(Batch& batch, uint16_t type, uint16_t flags, Object* object,
                        Build build_payload, std::string context) {
    nlmsghdr* nlh = batch.start(type, flags);
    build_payload(nlh, object);
    batch.commit(std::move(context));
}

void add_create_messages(Batch& batch, const std::string& name, const NftNatShape& shape) {
    TablePtr table = table_object(name, true);
    add_object_message(batch, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, table.get(),
                       nftnl_table_nlmsg_build_payload, "creating table ip " + name);
    for (SetPtr& set : set_definitions(name, shape)) {
        const char* set_name = nftnl_set_get_str(set.get(), NFTNL_SET_NAME);
        std::string what =
            std::string(nftnl_set_get_u32(set.get(), NFTNL_SET_FLAGS) & NFT_SET_MAP ? "map "
                                                                                    : "set ") +
            set_name;
        add_object_message(batch, NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL, set.get(),
                           nftnl_set_nlmsg_build_payload,
                           "adding " + what + " to table ip " + name);
        if (has_elements(set.get())) {
            nlmsghdr* nlh = batch.start(NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL);
            nftnl_set_elems_nlmsg_build_payload(nlh, set.get());
            batch.commit("adding the elements of " + what + " to table ip " + name);
        }
    }
    for (ChainPtr& chain : chain_definitions(name)) {
        add_object_message(batch, NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL, chain.get(),
                           nftnl_chain_nlmsg_build_payload,
                           std::string("adding chain ") +
                               nftnl_chain_get_str(chain.get(), NFTNL_CHAIN_NAME) +
                               " to table ip " + name);
    }
    for (RulePtr& rule : rule_definitions(name, shape)) {
        add_object_message(batch, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, rule.get(),
                           nftnl_rule_nlmsg_build_payload,
                           std::string("adding a rule to ") + name + "/" +
                               nftnl_rule_get_str(rule.get(), NFTNL_RULE_CHAIN));
    }
}

void add_delete_table_message(Batch& batch, const std::string& name) {
    TablePtr table = table_object(name, false);
    add_object_message(batch, NFT_MSG_DELTABLE, 0, table.get(), nftnl_table_nlmsg_build_payload,
                       "deleting table ip " + name);
}

// ---- reading -------------------------------------------------------------------------------

struct DumpedElement {
    uint32_t key;
    bool end;
    NatBlock data;
    uint64_t packets = 0;
    uint64_t bytes = 0;
};

int collect_element(nftnl_set_elem* e, void* out) {
    DumpedElement d{};
    uint32_t len = 0;
    const void* key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
    Ipv4Address addr{};
    std::memcpy(addr.data(), key, std::min<uint32_t>(len, 4));
    d.key = to_u32(addr);
    d.end = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
            (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) & NFT_SET_ELEM_INTERVAL_END);
    if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_DATA)) {
        auto* data = static_cast<const uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &len));
        if (len >= kBlockDataLen) {
            uint16_t first = 0;
            uint16_t last = 0;
            std::memcpy(d.data.public_address.data(), data, 4);
            std::memcpy(&first, data + 4, 2);
            std::memcpy(&last, data + 12, 2);
            d.data.first_port = ntohs(first);
            d.data.last_port = ntohs(last);
        }
    }
    nftnl_set_elem_expr_foreach(
        e,
        [](nftnl_expr* expr, void* data) {
            auto* element = static_cast<DumpedElement*>(data);
            if (std::strcmp(nftnl_expr_get_str(expr, NFTNL_EXPR_NAME), "counter") == 0) {
                element->packets = nftnl_expr_get_u64(expr, NFTNL_EXPR_CTR_PACKETS);
                element->bytes = nftnl_expr_get_u64(expr, NFTNL_EXPR_CTR_BYTES);
            }
            return 0;
        },
        &d);
    static_cast<std::vector<DumpedElement>*>(out)->push_back(d);
    return 0;
}

// Pairs each start element with the end element after it; the interval is a prefix because
// only prefixes are ever added. ADDRESSES: every block is one address (a map of addresses, or
// an interval map of /32s from an earlier version, whose end elements are skipped).
std::vector<NatBlockCounter> to_blocks(std::vector<DumpedElement> elements, bool addresses) {
    std::vector<uint32_t> ends;
    for (const auto& d : elements) {
        if (d.end) {
            ends.push_back(d.key);
        }
    }
    std::sort(ends.begin(), ends.end());
    std::vector<NatBlockCounter> out;
    for (const auto& d : elements) {
        if (d.end) {
            continue;
        }
        auto end = std::upper_bound(ends.begin(), ends.end(), d.key);
        uint64_t size = addresses           ? 1
                        : end == ends.end() ? (uint64_t{1} << 32) - d.key
                                            : *end - d.key;
        NatBlock block = d.data;
        block.internal = {from_u32(d.key), static_cast<uint8_t>(32 - std::countr_zero(size))};
        out.push_back({block, d.packets, d.bytes});
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.block.internal < b.block.internal; });
    return out;
}

std::vector<RulePtr> dump_rules(NftSocket& sock, const std::string& table) {
    auto filter = checked<RulePtr>(nftnl_rule_alloc());
    nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_u32(filter.get(), NFTNL_RULE_FAMILY, NFPROTO_IPV4);
    auto message = build_request(sock, NFT_MSG_GETRULE, NLM_F_DUMP, [&](nlmsghdr* nlh) {
        nftnl_rule_nlmsg_build_payload(nlh, filter.get());
    });
    std::vector<RulePtr> rules;
    request(sock, message, "listing the rules of table ip " + table, [&](const nlmsghdr* nlh) {
        auto r = checked<RulePtr>(nftnl_rule_alloc());
        if (nftnl_rule_nlmsg_parse(nlh, r.get()) == 0) {
            rules.push_back(std::move(r));
        }
    });
    return rules;
}

// The sets of TABLE (a dump of all sets of the family, filtered: the kernel dumps per family).
std::vector<SetPtr> dump_sets(NftSocket& sock, const std::string& table) {
    SetPtr filter = set_object(table, "");
    nftnl_set_unset(filter.get(), NFTNL_SET_NAME);
    auto message = build_request(sock, NFT_MSG_GETSET, NLM_F_DUMP, [&](nlmsghdr* nlh) {
        nftnl_set_nlmsg_build_payload(nlh, filter.get());
    });
    std::vector<SetPtr> sets;
    request(sock, message, "listing the sets of table ip " + table, [&](const nlmsghdr* nlh) {
        auto s = checked<SetPtr>(nftnl_set_alloc());
        if (nftnl_set_nlmsg_parse(nlh, s.get()) == 0 &&
            table == nftnl_set_get_str(s.get(), NFTNL_SET_TABLE)) {
            sets.push_back(std::move(s));
        }
    });
    return sets;
}

std::vector<ChainPtr> dump_chains(NftSocket& sock, const std::string& table) {
    auto filter = checked<ChainPtr>(nftnl_chain_alloc());
    nftnl_chain_set_str(filter.get(), NFTNL_CHAIN_TABLE, table.c_str());
    auto message = build_request(sock, NFT_MSG_GETCHAIN, NLM_F_DUMP, [&](nlmsghdr* nlh) {
        nftnl_chain_nlmsg_build_payload(nlh, filter.get());
    });
    std::vector<ChainPtr> chains;
    request(sock, message, "listing the chains of table ip " + table, [&](const nlmsghdr* nlh) {
        auto c = checked<ChainPtr>(nftnl_chain_alloc());
        if (nftnl_chain_nlmsg_parse(nlh, c.get()) == 0 &&
            table == nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) {
            chains.push_back(std::move(c));
        }
    });
    return chains;
}

// Every element of one set, handed to VISIT.
void dump_elements(NftSocket& sock, const std::string& table, const char* set,
                   const std::function<void(nftnl_set_elem*)>& visit) {
    SetPtr query = set_object(table, set);
    auto message = build_request(sock, NFT_MSG_GETSETELEM, NLM_F_DUMP, [&](nlmsghdr* nlh) {
        nftnl_set_elems_nlmsg_build_payload(nlh, query.get());
    });
    std::string context = "listing " + table + "/" + set;
    int rc = request(sock, message, context, [&](const nlmsghdr* nlh) {
        SetPtr part = set_object(table, set);
        if (nftnl_set_elems_nlmsg_parse(nlh, part.get()) == 0) {
            nftnl_set_elem_foreach(
                part.get(),
                [](nftnl_set_elem* e, void* data) {
                    (*static_cast<const std::function<void(nftnl_set_elem*)>*>(data))(e);
                    return 0;
                },
                const_cast<std::function<void(nftnl_set_elem*)>*>(&visit));
        }
    });
    if (rc == ENOENT) {
        throw NftError(context + ": " + std::strerror(ENOENT));
    }
}

// The packets of an element's counter (0 without one).
uint64_t element_packets(nftnl_set_elem* e) {
    uint64_t packets = 0;
    nftnl_set_elem_expr_foreach(
        e,
        [](nftnl_expr* expr, void* data) {
            if (std::strcmp(nftnl_expr_get_str(expr, NFTNL_EXPR_NAME), "counter") == 0) {
                *static_cast<uint64_t*>(data) = nftnl_expr_get_u64(expr, NFTNL_EXPR_CTR_PACKETS);
            }
            return 0;
        },
        &packets);
    return packets;
}

// What the rules of the table that are EXPECTED (by signature: the prerouting chain has two
// counted drops) counted; zero when the table has no such rule.
NatDropCounter counted_drops(NftSocket& sock, const std::string& table, RulePtr expected) {
    const std::string wanted = rule_signature(expected.get());
    NatDropCounter total;
    for (RulePtr& rule : dump_rules(sock, table)) {
        if (rule_signature(rule.get()) != wanted) {
            continue;
        }
        nftnl_expr_foreach(
            rule.get(),
            [](nftnl_expr* e, void* data) {
                if (std::strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter") == 0) {
                    auto* out = static_cast<NatDropCounter*>(data);
                    out->packets += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
                    out->bytes += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
                }
                return 0;
            },
            &total);
    }
    return total;
}

template <typename T>
std::vector<std::string> signatures(std::vector<T>& objects,
                                    std::string (*sign)(decltype(objects[0].get()))) {
    std::vector<std::string> out;
    for (auto& o : objects) {
        out.push_back(sign(o.get()));
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

// ---- NftSocket -------------------------------------------------------------------------------

NftSocket::NftSocket()
    : sock_(mnl_socket_open(NETLINK_NETFILTER)), seq_(static_cast<uint32_t>(time(nullptr))) {
    if (!sock_) {
        throw NftError(std::string("opening an nfnetlink socket: ") + std::strerror(errno));
    }
    if (mnl_socket_bind(sock_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        throw NftError(std::string("binding an nfnetlink socket: ") + std::strerror(errno));
    }
    port_id_ = mnl_socket_get_portid(sock_.get());
    int on = 1;
    // Extended acks name the refused attribute; capped acks keep a 10^5-element batch's answers
    // small (the offset still points into the message we sent).
    mnl_socket_setsockopt(sock_.get(), NETLINK_EXT_ACK, &on, sizeof(on));
    mnl_socket_setsockopt(sock_.get(), NETLINK_CAP_ACK, &on, sizeof(on));
    // A kernel that stops answering must not hang the daemon.
    timeval timeout{30, 0};
    setsockopt(mnl_socket_get_fd(sock_.get()), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
}

NftSocket::~NftSocket() = default;

// ---- NftNatTable ---------------------------------------------------------------------------

namespace {

NftNatShape checked_shape(NftNatShape shape) {
    const Ipv4Prefix& pool = shape.internal_pool;
    if (pool.len > 32 || mask_address(pool.addr, pool.len) != pool.addr) {
        throw NftError("NAT64 table: the internal pool " + to_string(pool) + " is not a prefix");
    }
    if (shape.block_len < pool.len || shape.block_len > 32) {
        throw NftError("NAT64 table: internal blocks of /" + std::to_string(shape.block_len) +
                       " do not fit the internal pool " + to_string(pool));
    }
    if (shape.block_ports == 0 || shape.block_ports > 65536) {
        throw NftError("NAT64 table: " + std::to_string(shape.block_ports) +
                       " ports per block is outside 1-65536");
    }
    // Empty: a shape for the blocks and counters only (NftNatShape::trusted_device).
    if (shape.trusted_device.size() >= IFNAMSIZ) {
        throw NftError("NAT64 table: \"" + shape.trusted_device +
                       "\" is not an interface name (1-" + std::to_string(IFNAMSIZ - 1) +
                       " characters)");
    }
    auto& indexes = shape.trusted_ifindexes;
    if (std::find(indexes.begin(), indexes.end(), 0u) != indexes.end()) {
        throw NftError("NAT64 table: 0 is not an interface index");
    }
    std::sort(indexes.begin(), indexes.end());
    indexes.erase(std::unique(indexes.begin(), indexes.end()), indexes.end());
    return shape;
}

}  // namespace

NftNatTable::NftNatTable(NftSocket& sock, std::string name, const NftNatShape& shape)
    : sock_(sock), name_(std::move(name)), shape_(checked_shape(shape)) {}

NftNatTable::State NftNatTable::observe() {
    TablePtr query = table_object(name_, false);
    auto message = build_request(sock_, NFT_MSG_GETTABLE, NLM_F_ACK, [&](nlmsghdr* nlh) {
        nftnl_table_nlmsg_build_payload(nlh, query.get());
    });
    std::optional<std::string> comment;
    int rc = request(sock_, message, "looking up table ip " + name_, [&](const nlmsghdr* nlh) {
        TablePtr t = checked<TablePtr>(nftnl_table_alloc());
        if (nftnl_table_nlmsg_parse(nlh, t.get()) == 0) {
            uint32_t len = 0;
            const void* data = nftnl_table_get_data(t.get(), NFTNL_TABLE_USERDATA, &len);
            comment = data ? std::string(static_cast<const char*>(data), len) : std::string();
        }
    });
    if (rc == ENOENT) {
        return State::absent;
    }
    UdataPtr ours = table_comment();
    std::string expected(static_cast<const char*>(nftnl_udata_buf_data(ours.get())),
                         nftnl_udata_buf_len(ours.get()));
    return comment == expected ? State::ours : State::foreign;
}

void NftNatTable::require_ours(const char* action) {
    if (observe() == State::foreign) {
        throw NftError(std::string(action) + ": table ip " + name_ +
                       " exists and is not managed by xlat64d; choose another nat64.table");
    }
}

bool NftNatTable::shape_matches() {
    return structure_matches() && read_trusted_ifindexes() == shape_.trusted_ifindexes;
}

bool NftNatTable::structure_matches() {
    std::vector<SetPtr> sets = dump_sets(sock_, name_);
    std::vector<SetPtr> expected_sets = set_definitions(name_, shape_);
    if (signatures(sets, set_signature) != signatures(expected_sets, set_signature)) {
        return false;
    }
    std::vector<ChainPtr> chains = dump_chains(sock_, name_);
    std::vector<ChainPtr> expected_chains = chain_definitions(name_);
    if (signatures(chains, chain_signature) != signatures(expected_chains, chain_signature)) {
        return false;
    }
    // Rules in their order within each chain (the signature starts with the chain's name).
    auto rule_signatures = [](std::vector<RulePtr> rules) {
        std::vector<std::string> out;
        for (RulePtr& rule : rules) {
            out.push_back(rule_signature(rule.get()));
        }
        std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
            return a.substr(0, a.find(':')) < b.substr(0, b.find(':'));
        });
        return out;
    };
    return rule_signatures(dump_rules(sock_, name_)) ==
           rule_signatures(rule_definitions(name_, shape_));
}

bool NftNatTable::ensure() {
    State state = observe();
    if (state == State::foreign) {
        throw NftError("creating the NAT64 table: table ip " + name_ +
                       " exists and is not managed by xlat64d; choose another nat64.table");
    }
    if (state == State::ours && structure_matches()) {
        // Adopted; only the trusted interfaces may differ (the fast path's interfaces or their
        // indexes changed), and they change in place: no rebuild, no refill of the blocks.
        if (read_trusted_ifindexes() == shape_.trusted_ifindexes) {
            return false;
        }
        replace_trusted_ifindexes();
        return true;
    }
    // Rebuilt in one batch: deleting and re-creating the table keeps the blocks, and the
    // dynamic sets start empty: the hairpin map and the session counts refill from the next
    // connections, so a block may briefly hold more than its limit, and a connection open
    // across the rebuild cannot be reached by hairpinning until it is opened again.
    std::vector<NatBlock> kept;
    Batch batch(sock_);
    if (state == State::ours) {
        for (const auto& b : read_blocks()) {
            kept.push_back(b.block);
        }
        add_delete_table_message(batch, name_);
    }
    add_create_messages(batch, name_, shape_);
    add_element_messages(batch, name_, shape_, NFT_MSG_NEWSETELEM, kept);
    batch.send();
    return true;
}

void NftNatTable::set_trusted_ifindexes(std::vector<uint32_t> ifindexes) {
    NftNatShape shape = shape_;
    shape.trusted_ifindexes = std::move(ifindexes);
    shape = checked_shape(std::move(shape));
    if (observe() != State::ours) {
        throw NftError("updating the trusted interfaces: table ip " + name_ +
                       " does not exist or is not managed by xlat64d");
    }
    shape_ = std::move(shape);
    replace_trusted_ifindexes();
}

// One batch: flush, then the new indexes. Within it the set is never seen empty, so no packet of
// an interface that stays trusted is dropped while the list changes.
void NftNatTable::replace_trusted_ifindexes() {
    Batch batch(sock_);
    nlmsghdr* nlh = batch.start(NFT_MSG_DELSETELEM, 0);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, name_.c_str());
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, kTrustedSet);
    batch.commit("flushing " + name_ + "/" + kTrustedSet);
    SetPtr trusted = trusted_set_definition(name_, shape_);
    if (has_elements(trusted.get())) {
        nlh = batch.start(NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL);
        nftnl_set_elems_nlmsg_build_payload(nlh, trusted.get());
        batch.commit("adding the interface indexes to " + name_ + "/" + kTrustedSet);
    }
    batch.send();
}

std::vector<uint32_t> NftNatTable::read_trusted_ifindexes() {
    std::vector<uint32_t> out;
    dump_elements(sock_, name_, kTrustedSet, [&](nftnl_set_elem* e) {
        uint32_t len = 0;
        const void* key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);
        uint32_t ifindex = 0;
        if (key != nullptr && len == sizeof(ifindex)) {
            std::memcpy(&ifindex, key, sizeof(ifindex));
            out.push_back(ifindex);
        }
    });
    std::sort(out.begin(), out.end());
    return out;
}

void NftNatTable::replace_blocks(const std::vector<NatBlock>& blocks) {
    require_ours("replacing NAT64 blocks");
    Batch batch(sock_);
    // DELSETELEM without elements flushes the set; within the batch nothing is ever seen empty.
    nlmsghdr* nlh = batch.start(NFT_MSG_DELSETELEM, 0);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, name_.c_str());
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, kBlocksSet);
    batch.commit("flushing " + name_ + "/" + kBlocksSet);
    add_element_messages(batch, name_, shape_, NFT_MSG_NEWSETELEM, blocks);
    batch.send();
}

void NftNatTable::add_blocks(const std::vector<NatBlock>& blocks) {
    if (blocks.empty()) {
        return;
    }
    Batch batch(sock_);
    add_element_messages(batch, name_, shape_, NFT_MSG_NEWSETELEM, blocks);
    batch.send();
}

void NftNatTable::remove_blocks(const std::vector<NatBlock>& blocks) {
    if (blocks.empty()) {
        return;
    }
    Batch batch(sock_);
    add_element_messages(batch, name_, shape_, NFT_MSG_DELSETELEM, blocks);
    batch.send();
}

std::vector<NatBlockCounter> NftNatTable::read_blocks() {
    std::vector<DumpedElement> elements;
    dump_elements(sock_, name_, kBlocksSet,
                  [&](nftnl_set_elem* e) { collect_element(e, &elements); });
    return to_blocks(std::move(elements), blocks_are_addresses(shape_));
}

std::optional<NatBlockCounter> NftNatTable::read_block(const Ipv4Prefix& internal) {
    SetPtr query = blocks_set_object(name_);
    nftnl_set_elem_add(query.get(), element_object({internal.addr, false, std::nullopt}).release());
    auto message = build_request(sock_, NFT_MSG_GETSETELEM, NLM_F_ACK, [&](nlmsghdr* nlh) {
        nftnl_set_elems_nlmsg_build_payload(nlh, query.get());
    });
    std::vector<DumpedElement> elements;
    std::string context = "looking up " + to_string(internal) + " in " + name_ + "/" + kBlocksSet;
    int rc = request(sock_, message, context, [&](const nlmsghdr* nlh) {
        SetPtr part = blocks_set_object(name_);
        if (nftnl_set_elems_nlmsg_parse(nlh, part.get()) == 0) {
            nftnl_set_elem_foreach(part.get(), collect_element, &elements);
        }
    });
    // The kernel answers with the interval holding the key: it must start exactly there.
    auto it = std::find_if(elements.begin(), elements.end(), [&](const DumpedElement& d) {
        return !d.end && d.key == to_u32(internal.addr);
    });
    if (rc == ENOENT || it == elements.end()) {
        return std::nullopt;
    }
    NatBlock block = it->data;
    block.internal = internal;
    return NatBlockCounter{block, it->packets, it->bytes};
}

uint64_t NftNatTable::unmapped_drops() {
    return counted_drops(sock_, name_, unmapped_drop_rule(name_, shape_)).packets;
}

uint64_t NftNatTable::forward_drops() {
    return counted_drops(sock_, name_, inbound_drop_rule(name_, shape_)).packets;
}

NatDropCounter NftNatTable::spoofed_source_drops() {
    return counted_drops(sock_, name_, spoofed_source_drop_rule(name_, shape_));
}

std::vector<NatExhaustion> NftNatTable::read_exhausted() {
    std::vector<NatExhaustion> out;
    dump_elements(sock_, name_, kExhaustedSet, [&](nftnl_set_elem* e) {
        uint32_t len = 0;
        auto* key = static_cast<const uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len));
        if (key == nullptr || len < kAddrProtoLen) {
            return;
        }
        NatExhaustion x;
        std::memcpy(x.internal_block.addr.data(), key, 4);
        x.internal_block.len = shape_.block_len;
        x.l4proto = key[4];
        x.refused = element_packets(e);
        out.push_back(x);
    });
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<NatHairpin> NftNatTable::read_hairpins() {
    std::vector<NatHairpin> out;
    dump_elements(sock_, name_, kHairpinMap, [&](nftnl_set_elem* e) {
        uint32_t key_len = 0;
        uint32_t data_len = 0;
        auto* key =
            static_cast<const uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &key_len));
        auto* data =
            static_cast<const uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &data_len));
        if (key == nullptr || data == nullptr || key_len < kAddrProtoPortLen ||
            data_len < kAddrPortLen) {
            return;
        }
        NatHairpin h;
        uint16_t port = 0;
        std::memcpy(h.public_address.data(), key, 4);
        h.l4proto = key[4];
        std::memcpy(&port, key + 8, 2);
        h.public_port = ntohs(port);
        std::memcpy(h.internal_address.data(), data, 4);
        std::memcpy(&port, data + 4, 2);
        h.internal_port = ntohs(port);
        out.push_back(h);
    });
    std::sort(out.begin(), out.end());
    return out;
}

bool NftNatTable::remove() {
    State state = observe();
    if (state == State::absent) {
        return false;
    }
    require_ours("deleting the NAT64 table");
    Batch batch(sock_);
    add_delete_table_message(batch, name_);
    batch.send();
    return true;
}

}  // namespace xlat64
