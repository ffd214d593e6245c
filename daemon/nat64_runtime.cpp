#include "daemon/nat64_runtime.h"

#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <time.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

#include "daemon/log.h"
#include "daemon/nat64_layout.h"
#include "kmod-shim/xlat64_abi.h"

namespace xlat64 {
namespace {

constexpr uint64_t kSecond = 1000000000ULL;

uint64_t monotonic_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<uint64_t>(now.tv_sec) * kSecond + static_cast<uint64_t>(now.tv_nsec);
}

uint32_t to_u32(const Ipv4Address& a) {
    return uint32_t{a[0]} << 24 | uint32_t{a[1]} << 16 | uint32_t{a[2]} << 8 | a[3];
}

const char* protocol_name(uint8_t proto) {
    switch (proto) {
        case IPPROTO_TCP:
            return "tcp";
        case IPPROTO_UDP:
            return "udp";
        case IPPROTO_ICMP:
            return "icmp";
    }
    return "other";
}

nlohmann::json counts_json(const ConntrackCounts& c) {
    return {
        {"tcp", c.tcp}, {"udp", c.udp}, {"icmp", c.icmp}, {"other", c.other}, {"total", c.total()}};
}

// Conntrack entries whose original source lies in BLOCK.
ConntrackCounts counts_in(const std::map<Ipv4Address, ConntrackCounts>& counts,
                          const Ipv4Prefix& block) {
    ConntrackCounts sum;
    for (auto it = counts.lower_bound(block.addr); it != counts.end() && contains(block, it->first);
         ++it) {
        sum.tcp += it->second.tcp;
        sum.udp += it->second.udp;
        sum.icmp += it->second.icmp;
        sum.other += it->second.other;
    }
    return sum;
}

int on_ring_event(void* ctx, void* data, size_t size) {
    static_cast<Nat64Runtime*>(ctx)->on_event(data, size);
    return 0;
}

}  // namespace

void Nat64Runtime::RingDeleter::operator()(ring_buffer* rb) const {
    ring_buffer__free(rb);
}

Nat64Runtime::Nat64Runtime(const Nat64Config& config, Nat64Maps maps, NftSocket& nft)
    : config_(config),
      maps_(maps),
      table_(nft, config.table, nat64_nft_shape(config)),
      subscribers_(config),
      blocks_(config) {
    ring_.reset(ring_buffer__new(maps_.events_fd(), on_ring_event, this, nullptr));
    if (!ring_) {
        throw std::runtime_error(std::string("opening the " XLAT64_MAP_EVENTS " ring buffer: ") +
                                 std::strerror(errno));
    }
}

Nat64Runtime::~Nat64Runtime() = default;

int Nat64Runtime::events_fd() const {
    return ring_buffer__epoll_fd(ring_.get());
}

void Nat64Runtime::drain_events() {
    ring_buffer__consume(ring_.get());
}

std::string Nat64Runtime::describe_block(uint32_t block) const {
    const NatBlock b = nat64_nat_blocks(config_, block, block + 1).front();
    return "block=" + std::to_string(block) + " public=" + to_string(b.public_address) +
           " ports=" + std::to_string(b.first_port) + "-" + std::to_string(b.last_port) +
           " internal=" + to_string(b.internal);
}

// One line per block handed out or returned: with the configuration, enough to trace any
// public address and port to its subscriber without logging sessions.
void Nat64Runtime::on_event(const void* data, size_t size) {
    if (size < sizeof(xlat_event)) {
        return;
    }
    xlat_event e;
    std::memcpy(&e, data, sizeof(e));
    Ipv6Address who;
    std::memcpy(who.data(), e.subscriber, who.size());
    switch (e.type) {
        case XLAT_EVENT_BLOCK_ALLOCATED:
            log_notice("nat64 allocate subscriber=" +
                       to_string(Ipv6Prefix{who, config_.subscriber_length}) + " " +
                       describe_block(e.block));
            break;
        case XLAT_EVENT_NO_BLOCK:
            if (no_block_logged_.insert(who).second) {
                log_warning("nat64: no free port block for new subscriber " +
                            to_string(Ipv6Prefix{who, config_.subscriber_length}) + " (all " +
                            std::to_string(blocks_.count()) +
                            " leased); its packets are dropped and counted as "
                            "nat64_no_free_block until a block is returned");
            }
            break;
        case XLAT_EVENT_NO_HOST_SLOT:
            if (no_host_slot_logged_.insert(who).second) {
                log_warning("nat64: host " + to_string(who) + " finds all " +
                            std::to_string(config_.hosts_per_subscriber) +
                            " internal addresses of its subscriber (" + describe_block(e.block) +
                            ") in use; its packets are dropped and counted as "
                            "nat64_no_host_address (raise nat64.hosts_per_subscriber)");
            }
            break;
    }
}

void Nat64Runtime::tick() {
    const uint64_t now = monotonic_ns();
    finish_releases();
    if (now >= next_expiry_ns_) {
        // A quarter of the idle time, between 1 and 10 seconds: an idle host is found soon
        // enough, and a million hosts are not walked every second.
        const uint64_t period = std::clamp<uint64_t>(config_.idle_timeout_seconds / 4, 1, 10);
        next_expiry_ns_ = now + period * kSecond;
        expire(now);
    }
    log_exhaustion();
}

// A host is returned when it has sent nothing for idle_timeout and conntrack holds none of its
// flows; in dynamic mode a block, when its lease is that old and none of its hosts is left.
// Conntrack decides, not the idle time alone: a TCP connection may be silent for hours and must
// keep its mapping (RFC 5382 REQ-5).
void Nat64Runtime::expire(uint64_t now) {
    const uint64_t idle = uint64_t{config_.idle_timeout_seconds} * kSecond;
    auto is_idle = [&](uint64_t last) { return now > last && now - last >= idle; };
    const std::vector<Nat64Host> hosts = maps_.hosts();
    std::vector<Nat64Host> idle_hosts;
    std::set<uint32_t> busy_blocks;
    for (const Nat64Host& h : hosts) {
        (is_idle(h.last_seen_ns) ? idle_hosts.push_back(h) : void(busy_blocks.insert(h.block)));
    }
    std::vector<Nat64Lease> idle_leases;
    if (config_.mode == Nat64Mode::dynamic) {
        for (const Nat64Lease& lease : maps_.leases()) {
            if (is_idle(lease.allocated_ns) && !busy_blocks.count(lease.block)) {
                idle_leases.push_back(lease);
            }
        }
    }
    if (idle_hosts.empty() && idle_leases.empty()) {
        return;
    }
    const auto counts = conntrack_.count_by_source(config_.internal_pool);
    for (const Nat64Host& h : idle_hosts) {
        auto it = counts.find(h.internal);
        if (it == counts.end() || it->second.total() == 0) {
            maps_.remove_host(h);
        } else {
            busy_blocks.insert(h.block);
        }
    }
    for (const Nat64Lease& lease : idle_leases) {
        const NatBlock b = nat64_nat_blocks(config_, lease.block, lease.block + 1).front();
        if (busy_blocks.count(lease.block) || counts_in(counts, b.internal).total() != 0) {
            continue;
        }
        maps_.forget_lease(lease.subscriber);
        releasing_.push_back({lease.subscriber, lease.block});
        log_notice("nat64 release subscriber=" + to_string(lease.subscriber) + " " +
                   describe_block(lease.block) +
                   " held=" + std::to_string((now - lease.allocated_ns) / kSecond) + "s");
    }
}

// The second half of a release. A program that read the lease just before it was forgotten may
// have given a host an address in the block since; such a host is removed too, so the block is
// clean when the next subscriber gets it.
void Nat64Runtime::finish_releases() {
    if (releasing_.empty()) {
        return;
    }
    for (const Owner& o : releasing_) {
        const NatBlock b = nat64_nat_blocks(config_, o.block, o.block + 1).front();
        for (const Nat64Host& late : maps_.hosts_in(b.internal)) {
            log_warning("nat64: host " + to_string(late.host) +
                        " arrived while its block was being returned; it gets a new one");
            maps_.remove_host(late);
        }
        maps_.free_block(o.block);
    }
    releasing_.clear();
    no_block_logged_.clear();  // blocks are free again: a new shortage is news
}

void Nat64Runtime::log_exhaustion() {
    std::set<std::pair<Ipv4Prefix, uint8_t>> now;
    for (const NatExhaustion& e : table_.read_exhausted()) {
        auto key = std::make_pair(e.internal_block, e.l4proto);
        now.insert(key);
        if (exhausted_logged_.count(key)) {
            continue;
        }
        const uint32_t block = static_cast<uint32_t>(
            (to_u32(e.internal_block.addr) - to_u32(config_.internal_pool.addr)) /
            config_.hosts_per_subscriber);
        std::optional<Ipv6Prefix> who = config_.mode == Nat64Mode::dynamic
                                            ? maps_.owner_of(block)
                                            : std::optional(subscribers_.prefix(block));
        log_warning("nat64: subscriber " + (who ? to_string(*who) : std::string("?")) + " (" +
                    describe_block(block) + ") has used all " + std::to_string(config_.block_size) +
                    " " + protocol_name(e.l4proto) + " ports of its block; its new " +
                    protocol_name(e.l4proto) +
                    " connections are refused until some end (other subscribers are unaffected)");
    }
    exhausted_logged_ = std::move(now);
}

std::vector<Nat64Runtime::Owner> Nat64Runtime::owners(const std::vector<Nat64Host>& hosts) {
    std::vector<Owner> out;
    if (config_.mode == Nat64Mode::dynamic) {
        for (const Nat64Lease& lease : maps_.leases()) {
            out.push_back({lease.subscriber, lease.block});
        }
    } else {
        std::set<uint32_t> blocks;
        for (const Nat64Host& h : hosts) {
            blocks.insert(h.block);
        }
        for (uint32_t k : blocks) {
            out.push_back({subscribers_.prefix(k), k});
        }
    }
    std::sort(out.begin(), out.end(),
              [](const Owner& a, const Owner& b) { return a.block < b.block; });
    return out;
}

nlohmann::json Nat64Runtime::subscriber_json(const Owner& owner,
                                             const std::vector<Nat64Host>& hosts,
                                             const std::map<Ipv4Address, ConntrackCounts>& counts) {
    const NatBlock b = nat64_nat_blocks(config_, owner.block, owner.block + 1).front();
    size_t host_count = 0;
    for (const Nat64Host& h : hosts) {
        host_count += h.block == owner.block;
    }
    return {{"subscriber", to_string(owner.subscriber)},
            {"block", owner.block},
            {"internal", to_string(b.internal)},
            {"public_address", to_string(b.public_address)},
            {"ports", std::to_string(b.first_port) + "-" + std::to_string(b.last_port)},
            {"hosts", host_count},
            {"sessions", counts_in(counts, b.internal).total()}};
}

nlohmann::json Nat64Runtime::pool() {
    const auto hosts = maps_.hosts();
    const auto counts = conntrack_.count_by_source(config_.internal_pool);
    ConntrackCounts sessions;
    for (const auto& [address, c] : counts) {
        sessions.tcp += c.tcp;
        sessions.udp += c.udp;
        sessions.icmp += c.icmp;
        sessions.other += c.other;
    }
    const uint64_t total = blocks_.count();
    const uint64_t used = owners(hosts).size();
    nlohmann::json prefixes = nlohmann::json::array();
    for (const Ipv4Prefix& p : config_.public_prefixes) {
        prefixes.push_back(to_string(p));
    }
    nlohmann::json exhausted = nlohmann::json::array();
    for (const NatExhaustion& e : table_.read_exhausted()) {
        exhausted.push_back({{"internal", to_string(e.internal_block)},
                             {"protocol", protocol_name(e.l4proto)},
                             {"refused", e.refused}});
    }
    return {
        {"mode", config_.mode == Nat64Mode::dynamic ? "dynamic" : "deterministic"},
        {"public_prefixes", prefixes},
        {"public_addresses", nat64_public_address_count(config_)},
        {"ports", std::to_string(config_.ports.first) + "-" + std::to_string(config_.ports.last)},
        {"block_size", config_.block_size},
        {"blocks_per_address", nat64_blocks_per_address(config_)},
        {"blocks",
         {{"total", total},
          {"used", used},
          {"free", total - std::min(used, total)},
          {"assigned_by_configuration",
           config_.mode == Nat64Mode::dynamic ? 0 : subscribers_.count()}}},
        {"internal_pool", to_string(config_.internal_pool)},
        {"hosts", hosts.size()},
        {"sessions", counts_json(sessions)},
        {"exhausted", exhausted},
        {"unmapped_drops", table_.unmapped_drops()},
        {"inbound_drops", table_.forward_drops()}};
}

nlohmann::json Nat64Runtime::subscribers() {
    const auto hosts = maps_.hosts();
    const auto counts = conntrack_.count_by_source(config_.internal_pool);
    nlohmann::json out = nlohmann::json::array();
    for (const Owner& o : owners(hosts)) {
        out.push_back(subscriber_json(o, hosts, counts));
    }
    return out;
}

nlohmann::json Nat64Runtime::subscriber(const std::string& text) {
    std::optional<Ipv6Address> address;
    if (auto prefix = parse_ipv6_prefix(text)) {
        address = prefix->addr;
    } else {
        address = parse_ipv6_address(text);
    }
    if (!address) {
        throw std::runtime_error(text + " is neither an IPv6 prefix nor an IPv6 address");
    }
    auto index = subscribers_.index_of(*address);
    if (!index) {
        throw std::runtime_error(text + " is in none of the admitted nat64.prefixes");
    }
    const Ipv6Prefix prefix = subscribers_.prefix(*index);
    std::optional<uint32_t> block;
    if (config_.mode == Nat64Mode::dynamic) {
        if (auto lease = maps_.lease(prefix)) {
            block = lease->block;
        }
    } else {
        block = static_cast<uint32_t>(*index);
    }
    nlohmann::json out = {
        {"subscriber", to_string(prefix)},
        {"mode", config_.mode == Nat64Mode::dynamic ? "dynamic" : "deterministic"}};
    if (!block) {
        out["block"] = nullptr;
        out["note"] = "no block leased: the subscriber has sent nothing recently";
        return out;
    }
    const NatBlock b = nat64_nat_blocks(config_, *block, *block + 1).front();
    const auto counts = conntrack_.count_by_source(b.internal);
    const uint64_t now = monotonic_ns();
    nlohmann::json hosts = nlohmann::json::array();
    for (const Nat64Host& h : maps_.hosts_in(b.internal)) {
        hosts.push_back(
            {{"address", to_string(h.host)},
             {"internal", to_string(h.internal)},
             {"idle_seconds", now > h.last_seen_ns ? (now - h.last_seen_ns) / kSecond : 0}});
    }
    out["block"] = *block;
    out["internal"] = to_string(b.internal);
    out["public_address"] = to_string(b.public_address);
    out["ports"] = std::to_string(b.first_port) + "-" + std::to_string(b.last_port);
    out["hosts"] = hosts;
    out["sessions"] = counts_json(counts_in(counts, b.internal));
    if (auto counter = table_.read_block(b.internal)) {
        out["sessions_created"] = counter->sessions;
    }
    nlohmann::json exhausted = nlohmann::json::array();
    for (const NatExhaustion& e : table_.read_exhausted()) {
        if (e.internal_block == b.internal) {
            exhausted.push_back({{"protocol", protocol_name(e.l4proto)}, {"refused", e.refused}});
        }
    }
    out["exhausted"] = exhausted;
    return out;
}

}  // namespace xlat64
