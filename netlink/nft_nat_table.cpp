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
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>

namespace xlat64 {
namespace {

constexpr const char* kBlocksSet = "blocks";
constexpr const char* kChain = "postrouting";
constexpr uint32_t kBlocksSetId = 1;
// nft's datatype numbers (ipv4_addr = 7, inet_service = 13; a concatenation packs them 6 bits
// apart), so `nft list` shows the map in its own words. The kernel only checks the lengths.
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeInetService = 13;
constexpr uint32_t kTypeConcatAddrService = kTypeIpv4Addr << 6 | kTypeInetService;
// Map data: address . port, then address . port again for the top of the range, each field in
// its own 32-bit register (see nat_expr).
constexpr uint32_t kBlockDataLen = 16;
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

SetPtr blocks_set_object(const std::string& table) {
    auto s = checked<SetPtr>(nftnl_set_alloc());
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, kBlocksSet);
    nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_IPV4);
    return s;
}

SetPtr blocks_set_definition(const std::string& table) {
    SetPtr s = blocks_set_object(table);
    nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, NFT_SET_INTERVAL | NFT_SET_MAP);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, kTypeIpv4Addr);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, 4);
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, kTypeConcatAddrService);
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, kBlockDataLen);
    nftnl_set_set_u32(s.get(), NFTNL_SET_ID, kBlocksSetId);
    // How nft describes such a map, so `nft list` prints "interval ipv4_addr . inet_service"
    // rather than raw bytes: key in network byte order, data an interval.
    auto udata = checked<UdataPtr>(nftnl_udata_buf_alloc(64));
    nftnl_udata_put_u32(udata.get(), NFTNL_UDATA_SET_KEYBYTEORDER, 2 /* big endian */);
    nftnl_udata_put_u32(udata.get(), NFTNL_UDATA_SET_DATABYTEORDER, 0);
    nftnl_udata_put_u32(udata.get(), NFTNL_UDATA_SET_DATA_INTERVAL, 1);
    nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(udata.get()),
                       nftnl_udata_buf_len(udata.get()));
    // A counter in every element: the kernel gives each new element a copy of it.
    nftnl_set_add_expr(s.get(), checked<ExprPtr>(nftnl_expr_alloc("counter")).release());
    return s;
}

ChainPtr chain_object(const std::string& table) {
    auto c = checked<ChainPtr>(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, kChain);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_IPV4);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, NF_INET_POST_ROUTING);
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, 100);  // srcnat
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "nat");
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    return c;
}

void add_expr(nftnl_rule* rule, const char* name,
              const std::function<void(nftnl_expr*)>& configure) {
    auto e = checked<ExprPtr>(nftnl_expr_alloc(name));
    configure(e.get());
    nftnl_rule_add_expr(rule, e.release());
}

void load_saddr(nftnl_rule* r) {
    add_expr(r, "payload", [](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, 12);  // struct iphdr, saddr
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 4);
    });
}

RulePtr rule_object(const std::string& table) {
    auto r = checked<RulePtr>(nftnl_rule_alloc());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, kChain);
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_IPV4);
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
    RulePtr r = rule_object(table);
    load_saddr(r.get());
    add_expr(r.get(), "lookup", [](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_1);
        nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, kBlocksSet);
        nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, kBlocksSetId);
    });
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
RulePtr drop_rule(const std::string& table, const Ipv4Prefix& pool) {
    RulePtr r = rule_object(table);
    load_saddr(r.get());
    uint32_t mask = htonl(pool.len == 0 ? 0 : ~uint32_t{0} << (32 - pool.len));
    uint32_t zero = 0;
    uint32_t net = htonl(to_u32(pool.addr));
    add_expr(r.get(), "bitwise", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 4);
        nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
        nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, 4);
    });
    add_expr(r.get(), "cmp", [&](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
        nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &net, 4);
    });
    add_expr(r.get(), "counter", [](nftnl_expr*) {});
    add_expr(r.get(), "immediate", [](nftnl_expr* e) {
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
        nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
    });
    return r;
}

// What identifies a rule's behaviour (expression kinds and the values that matter), to tell
// whether an adopted table still has the rules this version builds.
std::string rule_signature(nftnl_rule* rule) {
    std::string sig;
    nftnl_expr_foreach(
        rule,
        [](nftnl_expr* e, void* data) {
            auto* out = static_cast<std::string*>(data);
            std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
            *out += name;
            uint32_t len = 0;
            if (name == "cmp") {
                auto* bytes =
                    static_cast<const uint8_t*>(nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len));
                for (uint32_t i = 0; i < len; ++i) {
                    *out += ":" + std::to_string(bytes[i]);
                }
            } else if (name == "bitwise") {
                auto* bytes =
                    static_cast<const uint8_t*>(nftnl_expr_get(e, NFTNL_EXPR_BITWISE_MASK, &len));
                for (uint32_t i = 0; i < len; ++i) {
                    *out += ":" + std::to_string(bytes[i]);
                }
            } else if (name == "nat") {
                // The kernel adds the map-address and proto-specified bits itself.
                uint32_t flags = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FLAGS);
                *out += ":" + std::to_string(flags & NF_NAT_RANGE_PROTO_OFFSET);
            } else if (name == "lookup") {
                *out += std::string(":") + nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);
            }
            *out += ";";
            return 0;
        },
        &sig);
    return sig;
}

// ---- elements ------------------------------------------------------------------------------

struct ElementSpec {
    Ipv4Address key{};
    bool interval_end = false;
    std::optional<NatBlock> data;  // start elements of an add carry the mapping
};

// An interval set holds a prefix as a start element and an end element one past its last
// address; a prefix reaching 255.255.255.255 has no end element.
std::vector<ElementSpec> interval_elements(const NatBlock& block, bool with_data) {
    std::vector<ElementSpec> out;
    out.push_back({block.internal.addr, false, with_data ? std::optional(block) : std::nullopt});
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
void add_element_messages(Batch& batch, const std::string& table, uint16_t type,
                          const std::vector<NatBlock>& blocks) {
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
            for (const ElementSpec& spec : interval_elements(blocks[next], adding)) {
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

void add_create_messages(Batch& batch, const std::string& name, const Ipv4Prefix& pool) {
    TablePtr table = table_object(name, true);
    add_object_message(batch, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, table.get(),
                       nftnl_table_nlmsg_build_payload, "creating table ip " + name);
    SetPtr set = blocks_set_definition(name);
    add_object_message(batch, NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL, set.get(),
                       nftnl_set_nlmsg_build_payload, "creating map " + name + "/" + kBlocksSet);
    ChainPtr chain = chain_object(name);
    add_object_message(batch, NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL, chain.get(),
                       nftnl_chain_nlmsg_build_payload, "creating chain " + name + "/" + kChain);
    RulePtr snat = snat_rule(name);
    add_object_message(batch, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, snat.get(),
                       nftnl_rule_nlmsg_build_payload,
                       "adding the snat rule to " + name + "/" + kChain);
    RulePtr drop = drop_rule(name, pool);
    add_object_message(batch, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, drop.get(),
                       nftnl_rule_nlmsg_build_payload,
                       "adding the drop rule to " + name + "/" + kChain);
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
// only prefixes are ever added.
std::vector<NatBlockCounter> to_blocks(std::vector<DumpedElement> elements) {
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
        uint64_t size = end == ends.end() ? (uint64_t{1} << 32) - d.key : *end - d.key;
        NatBlock block = d.data;
        block.internal = {from_u32(d.key), static_cast<uint8_t>(32 - std::countr_zero(size))};
        out.push_back({block, d.packets, d.bytes});
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.block.internal < b.block.internal; });
    return out;
}

std::vector<RulePtr> dump_rules(NftSocket& sock, const std::string& table) {
    RulePtr filter = rule_object(table);
    auto message = build_request(sock, NFT_MSG_GETRULE, NLM_F_DUMP, [&](nlmsghdr* nlh) {
        nftnl_rule_nlmsg_build_payload(nlh, filter.get());
    });
    std::vector<RulePtr> rules;
    request(sock, message, "listing the rules of " + table + "/" + kChain,
            [&](const nlmsghdr* nlh) {
                auto r = checked<RulePtr>(nftnl_rule_alloc());
                if (nftnl_rule_nlmsg_parse(nlh, r.get()) == 0) {
                    rules.push_back(std::move(r));
                }
            });
    return rules;
}

}  // namespace

// ---- NftSocket -------------------------------------------------------------------------------

void NftSocket::Closer::operator()(mnl_socket* sock) const {
    mnl_socket_close(sock);
}

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

NftNatTable::NftNatTable(NftSocket& sock, std::string name, Ipv4Prefix internal_pool)
    : sock_(sock), name_(std::move(name)), internal_pool_(internal_pool) {}

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
    std::vector<RulePtr> rules = dump_rules(sock_, name_);
    std::vector<RulePtr> expected;
    expected.push_back(snat_rule(name_));
    expected.push_back(drop_rule(name_, internal_pool_));
    if (rules.size() != expected.size()) {
        return false;
    }
    for (size_t i = 0; i < rules.size(); ++i) {
        if (rule_signature(rules[i].get()) != rule_signature(expected[i].get())) {
            return false;
        }
    }
    return true;
}

bool NftNatTable::ensure() {
    State state = observe();
    if (state == State::foreign) {
        throw NftError("creating the NAT64 table: table ip " + name_ +
                       " exists and is not managed by xlat64d; choose another nat64.table");
    }
    if (state == State::ours && shape_matches()) {
        return false;  // adopted as it is
    }
    std::vector<NatBlock> kept;
    Batch batch(sock_);
    if (state == State::ours) {
        for (const auto& b : read_blocks()) {
            kept.push_back(b.block);
        }
        add_delete_table_message(batch, name_);
    }
    add_create_messages(batch, name_, internal_pool_);
    add_element_messages(batch, name_, NFT_MSG_NEWSETELEM, kept);
    batch.send();
    return true;
}

void NftNatTable::replace_blocks(const std::vector<NatBlock>& blocks) {
    require_ours("replacing NAT64 blocks");
    Batch batch(sock_);
    // DELSETELEM without elements flushes the set; within the batch nothing is ever seen empty.
    nlmsghdr* nlh = batch.start(NFT_MSG_DELSETELEM, 0);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, name_.c_str());
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, kBlocksSet);
    batch.commit("flushing " + name_ + "/" + kBlocksSet);
    add_element_messages(batch, name_, NFT_MSG_NEWSETELEM, blocks);
    batch.send();
}

void NftNatTable::add_blocks(const std::vector<NatBlock>& blocks) {
    if (blocks.empty()) {
        return;
    }
    Batch batch(sock_);
    add_element_messages(batch, name_, NFT_MSG_NEWSETELEM, blocks);
    batch.send();
}

void NftNatTable::remove_blocks(const std::vector<NatBlock>& blocks) {
    if (blocks.empty()) {
        return;
    }
    Batch batch(sock_);
    add_element_messages(batch, name_, NFT_MSG_DELSETELEM, blocks);
    batch.send();
}

std::vector<NatBlockCounter> NftNatTable::read_blocks() {
    SetPtr set = blocks_set_object(name_);
    auto message = build_request(sock_, NFT_MSG_GETSETELEM, NLM_F_DUMP, [&](nlmsghdr* nlh) {
        nftnl_set_elems_nlmsg_build_payload(nlh, set.get());
    });
    std::vector<DumpedElement> elements;
    int rc =
        request(sock_, message, "listing " + name_ + "/" + kBlocksSet, [&](const nlmsghdr* nlh) {
            SetPtr part = blocks_set_object(name_);
            if (nftnl_set_elems_nlmsg_parse(nlh, part.get()) == 0) {
                nftnl_set_elem_foreach(part.get(), collect_element, &elements);
            }
        });
    if (rc == ENOENT) {
        throw NftError("listing " + name_ + "/" + kBlocksSet + ": " + std::strerror(ENOENT));
    }
    return to_blocks(std::move(elements));
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
    uint64_t packets = 0;
    for (RulePtr& rule : dump_rules(sock_, name_)) {
        bool drops = false;
        uint64_t counted = 0;
        auto visit = [&](nftnl_expr* e) {
            std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
            if (name == "counter") {
                counted = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
            } else if (name == "immediate" &&
                       nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT) == NF_DROP) {
                drops = true;
            }
        };
        nftnl_expr_foreach(
            rule.get(),
            [](nftnl_expr* e, void* data) {
                (*static_cast<decltype(visit)*>(data))(e);
                return 0;
            },
            &visit);
        packets += drops ? counted : 0;
    }
    return packets;
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
