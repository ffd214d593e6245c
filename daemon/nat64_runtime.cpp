#include "daemon/nat64_runtime.h"

#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <time.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <map>
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

Nat64Runtime::Nat64Runtime(Nat64Ledger& ledger, Nat64Maps maps, NftSocket& nft)
    : ledger_(ledger),
      config_(ledger.config()),
      maps_(maps),
      table_(nft, config_.table, nat64_nft_shape(config_)),
      subscribers_(config_),
      blocks_(config_) {
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
            pending_.push_back({{Ipv6Prefix{who, config_.subscriber_length}, e.block},
                                wall_time_of_monotonic(e.time_ns)});
            record_pending();
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

// The data path hands a block out before the daemon hears of it (that is what keeps the first
// packet from waiting); the record follows within milliseconds. A block can still never go to two
// subscribers, because the kernel's owner map decides, and sync_with_store() catches up on
// whatever a crash left unrecorded.
void Nat64Runtime::record_pending() {
    std::vector<Pending> left;
    for (const Pending& p : pending_) {
        try {
            ledger_.allocated(p.owner.subscriber, p.owner.block, p.from);
        } catch (const StoreError& e) {
            if (e.kind() == StoreError::Kind::conflict) {
                continue;  // already recorded (a replayed event)
            }
            if (left.empty()) {
                log_error(std::string("nat64: cannot record an allocation, will retry: ") +
                          e.what());
            }
            left.push_back(p);
        }
    }
    pending_ = std::move(left);
}

void Nat64Runtime::sync_with_store() {
    if (config_.mode != Nat64Mode::dynamic) {
        return;
    }
    std::map<std::pair<Ipv6Prefix, uint64_t>, bool> recorded;
    for (const Allocation& a : ledger_.open_allocations()) {
        if (ledger_.matches_layout(a)) {
            recorded[{a.subscriber, a.block}] = false;
        } else {
            ledger_.closed_by_configuration(a);
        }
    }
    for (const Nat64Lease& lease : maps_.leases()) {
        auto it = recorded.find({lease.subscriber, lease.block});
        if (it != recorded.end()) {
            it->second = true;
            continue;
        }
        pending_.push_back(
            {{lease.subscriber, lease.block}, wall_time_of_monotonic(lease.allocated_ns)});
    }
    record_pending();
    for (const auto& [key, in_kernel] : recorded) {
        if (in_kernel) {
            continue;
        }
        const auto& [subscriber, block] = key;
        const auto owner = maps_.owner_of(static_cast<uint32_t>(block));
        if (owner == subscriber || maps_.claim_block(static_cast<uint32_t>(block), subscriber)) {
            maps_.set_lease(subscriber, static_cast<uint32_t>(block), monotonic_ns());
            log_notice("nat64: re-created the lease of " + to_string(subscriber) + " (" +
                       describe_block(static_cast<uint32_t>(block)) + ") from the store");
        } else {
            ledger_.released(subscriber, static_cast<uint32_t>(block), wall_now(), 0,
                             "block-taken-while-down");
        }
    }
    return_orphaned_blocks();
}

// A block claimed in the owner map with no lease behind it was being returned (or handed out by
// `subscriber add`) when the previous daemon died: nobody can use it, and nobody would ever free
// it. Its release (if any) is already in the store, so it only goes back to the free queue.
void Nat64Runtime::return_orphaned_blocks() {
    std::set<std::pair<uint32_t, Ipv6Prefix>> leased;
    for (const Nat64Lease& lease : maps_.leases()) {
        leased.insert({lease.block, lease.subscriber});
    }
    for (const auto& [block, owner] : maps_.owners()) {
        if (leased.count({block, owner})) {
            continue;
        }
        const NatBlock b = nat64_nat_blocks(config_, block, block + 1).front();
        for (const Nat64Host& host : maps_.hosts_in(b.internal)) {
            maps_.remove_host(host);
        }
        maps_.free_block(block);
        log_notice("nat64: block " + std::to_string(block) + " of " + to_string(owner) +
                   " was left claimed without a lease by the previous xlat64d; returned");
    }
}

void Nat64Runtime::tick() {
    const uint64_t now = monotonic_ns();
    if (!pending_.empty()) {
        record_pending();
    }
    if (now >= next_prune_ns_) {
        next_prune_ns_ = now + 86400 * kSecond;  // retention is counted in days
        if (const uint64_t pruned = ledger_.prune(); pruned > 0) {
            log_info("nat64: pruned " + std::to_string(pruned) +
                     " allocations older than the retention (state.retention_days)");
        }
    }
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
        // Closed in the store first: the history must never show the block free while it is
        // still in use, nor in use by two.
        try {
            ledger_.released(lease.subscriber, lease.block, wall_now(),
                             static_cast<int64_t>((now - lease.allocated_ns) / kSecond), "idle");
        } catch (const StoreError& e) {
            log_error(std::string("nat64: keeping an idle block: ") + e.what());
            continue;
        }
        maps_.forget_lease(lease.subscriber);
        releasing_.push_back({lease.subscriber, lease.block});
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

Ipv6Prefix Nat64Runtime::subscriber_prefix(const std::string& text) {
    auto prefix = parse_ipv6_prefix(text);
    if (!prefix) {
        throw std::runtime_error(text + " is not an IPv6 prefix (e.g. 2001:db8:100:1::/64)");
    }
    if (prefix->len != config_.subscriber_length) {
        throw std::runtime_error(text + " is a /" + std::to_string(prefix->len) +
                                 "; subscribers are /" + std::to_string(config_.subscriber_length) +
                                 " (nat64.subscriber_length)");
    }
    if (mask_address(prefix->addr, prefix->len) != prefix->addr) {
        throw std::runtime_error(
            text + " has host bits set; use " +
            to_string(Ipv6Prefix{mask_address(prefix->addr, prefix->len), prefix->len}));
    }
    if (!subscribers_.index_of(prefix->addr)) {
        throw std::runtime_error(text + " is in none of the admitted nat64.prefixes");
    }
    return *prefix;
}

// Commit first, then the kernel: the block is taken from the free queue and claimed (so the data
// path cannot hand it out meanwhile), recorded, and only then does the subscriber resolve to it.
std::optional<uint32_t> Nat64Runtime::lease_block_now(const Ipv6Prefix& subscriber) {
    if (auto lease = maps_.lease(subscriber)) {
        return lease->block;
    }
    for (int attempt = 0; attempt < 8; ++attempt) {
        auto block = maps_.pop_free_block();
        if (!block) {
            return std::nullopt;
        }
        if (*block >= blocks_.count() || !maps_.claim_block(*block, subscriber)) {
            continue;  // stale or already owned: the owner map decides
        }
        try {
            ledger_.allocated(subscriber, *block, wall_now());
        } catch (...) {
            maps_.free_block(*block);  // unclaims it and queues it again
            throw;
        }
        maps_.set_lease(subscriber, *block, monotonic_ns());
        return block;
    }
    return std::nullopt;
}

nlohmann::json Nat64Runtime::add_subscriber(const std::string& text, const std::string& account) {
    const Ipv6Prefix prefix = subscriber_prefix(text);
    ledger_.store().add_subscriber(prefix, account, wall_now());
    nlohmann::json out = {{"subscriber", to_string(prefix)}, {"account", account}};
    std::optional<uint32_t> block;
    if (config_.mode == Nat64Mode::dynamic) {
        block = lease_block_now(prefix);
        if (!block) {
            throw std::runtime_error(to_string(prefix) +
                                     " is provisioned, but every port block is leased; it gets "
                                     "one when a block is returned");
        }
    } else {
        block = static_cast<uint32_t>(*subscribers_.index_of(prefix.addr));
    }
    const NatBlock b = nat64_nat_blocks(config_, *block, *block + 1).front();
    out["block"] = *block;
    out["public_address"] = to_string(b.public_address);
    out["ports"] = std::to_string(b.first_port) + "-" + std::to_string(b.last_port);
    out["internal"] = to_string(b.internal);
    return out;
}

nlohmann::json Nat64Runtime::remove_subscriber(const std::string& text) {
    const Ipv6Prefix prefix = subscriber_prefix(text);
    nlohmann::json out = {{"subscriber", to_string(prefix)}};
    if (config_.mode == Nat64Mode::dynamic) {
        if (auto lease = maps_.lease(prefix)) {
            ledger_.released(prefix, lease->block, wall_now(),
                             static_cast<int64_t>((monotonic_ns() - lease->allocated_ns) / kSecond),
                             "removed");
            maps_.forget_lease(prefix);
            releasing_.push_back({prefix, lease->block});
            out["released_block"] = lease->block;
        }
    }
    out["removed"] = ledger_.store().remove_subscriber(prefix);
    return out;
}

nlohmann::json Nat64Runtime::trace(const std::string& address_port, std::optional<int64_t> at) {
    const auto colon = address_port.rfind(':');
    std::optional<Ipv4Address> address;
    unsigned long port = 0;
    if (colon != std::string::npos) {
        address = parse_ipv4_address(address_port.substr(0, colon));
        const std::string port_text = address_port.substr(colon + 1);
        char* end = nullptr;
        port = std::strtoul(port_text.c_str(), &end, 10);
        if (port_text.empty() || *end != '\0' || port > 65535) {
            address.reset();
        }
    }
    if (!address) {
        throw std::runtime_error(address_port +
                                 " is not PUBLIC-IPV4:PORT (e.g. 203.0.113.5:40123)");
    }
    return ledger_.trace(*address, static_cast<uint16_t>(port), at.value_or(wall_now()));
}

}  // namespace xlat64
