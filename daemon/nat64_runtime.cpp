#include "daemon/nat64_runtime.h"

#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <iterator>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include "daemon/log.h"
#include "daemon/nat64_layout.h"
#include "daemon/subscriber_import.h"
#include "kmod-shim/xlat64_abi.h"

namespace xlat64 {
namespace {

constexpr uint64_t kSecond = 1000000000ULL;
// Idle blocks returned per expiry pass, at most, the next pass then a second later: one commit of
// this many closes takes a few tenths of a second, so a million leases restored by a reboot and
// idle together drain in about a minute of short passes instead of holding the event loop (and
// the watchdog) for all of it.
constexpr size_t kIdleReleasesPerPass = 16384;
// What a BPF ring buffer record takes beyond its data (BPF_RINGBUF_HDR_SZ), which is padded to 8.
constexpr uint64_t kRingHeaderBytes = 8;

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

std::string what_of(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "unknown error";
    }
}

int on_ring_event(void* ctx, void* data, size_t size) {
    static_cast<Nat64Runtime*>(ctx)->on_event(data, size);
    return 0;
}

}  // namespace

void Nat64Runtime::RingDeleter::operator()(ring_buffer* rb) const {
    ring_buffer__free(rb);
}

Nat64Runtime::Nat64Runtime(Nat64Ledger& ledger, Nat64Maps maps, NftSocket& nft, std::string device)
    : ledger_(ledger),
      config_(ledger.config()),
      layout_(config_),
      maps_(maps),
      table_(nft, config_.table, nat64_nft_shape(config_, std::move(device))),
      subscribers_(config_),
      blocks_(config_) {
    ring_.reset(ring_buffer__new(maps_.events_fd(), on_ring_event, this, nullptr));
    if (!ring_) {
        throw std::runtime_error(std::string("opening the " XLAT64_MAP_EVENTS " ring buffer: ") +
                                 std::strerror(errno));
    }
}

Nat64Runtime::~Nat64Runtime() {
    try {
        settle_leases();
    } catch (const std::exception& e) {
        log_error(std::string("nat64: ") + e.what());
    }
}

int Nat64Runtime::events_fd() const {
    return ring_buffer__epoll_fd(ring_.get());
}

void Nat64Runtime::drain_events() {
    ring_buffer__consume(ring_.get());
    record_pending();
}

std::string Nat64Runtime::describe_block(uint32_t block) const {
    const NatBlock b = layout_(block);
    return "block=" + std::to_string(block) + " public=" + to_string(b.public_address) +
           " ports=" + std::to_string(b.first_port) + "-" + std::to_string(b.last_port) +
           " internal=" + to_string(b.internal);
}

// One line per block handed out or returned: with the configuration, enough to trace any
// public address and port to its subscriber without logging sessions.
void Nat64Runtime::on_event(const void* data, size_t size) {
    event_bytes_ += kRingHeaderBytes + (size + 7) / 8 * 8;
    if (size < sizeof(xlat_event)) {
        return;
    }
    xlat_event e;
    std::memcpy(&e, data, sizeof(e));
    Ipv6Address who;
    std::memcpy(who.data(), e.subscriber, who.size());
    switch (e.type) {
        case XLAT_EVENT_BLOCK_ALLOCATED:
            // Recorded by drain_events() once the ring is read: one commit for a burst.
            pending_.push_back({{Ipv6Prefix{who, config_.subscriber_length}, e.block},
                                wall_time_of_monotonic(e.time_ns)});
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
// whatever a crash left unrecorded. All pending ones go in one commit: a burst of first packets
// (subscribers moving over from a failed BRAS) must not cost an fsync each on the event loop.
void Nat64Runtime::record_pending() {
    if (pending_.empty()) {
        return;
    }
    std::vector<Nat64Ledger::Opening> openings;
    openings.reserve(pending_.size());
    for (const Pending& p : pending_) {
        openings.push_back({p.owner.subscriber, p.owner.block, p.from});
    }
    std::vector<size_t> refused;
    try {
        refused = ledger_.allocated(openings);
    } catch (const StoreError& e) {
        const size_t n = pending_.size();
        log_error("nat64: cannot record " +
                  (n == 1 ? std::string("an allocation") : std::to_string(n) + " allocations") +
                  ", will retry: " + e.what());
        return;
    }
    // A refused one is already recorded (a replayed event); or, while an import chunk's leases
    // are being added, the subscriber's block from that chunk, which this one supersedes: tried
    // again once the chunk's leases are settled.
    std::vector<Pending> left;
    if (leasing_) {
        for (size_t i : refused) {
            left.push_back(pending_[i]);
        }
    }
    pending_ = std::move(left);
}

// One batched walk of the leases and one of the owners, compared with one read of the store by
// block number (arrays, no sorting): a restart with a million leases takes seconds less than with
// a walk of the maps per question.
void Nat64Runtime::sync_with_store(const std::vector<Allocation>& open,
                                   std::optional<uint64_t> restored_ns) {
    settle_leases();
    if (config_.mode != Nat64Mode::dynamic) {
        return;
    }
    // Not restored, and not to be: their blocks mean others now.
    ledger_.close_changed_by_configuration(open);
    if (restored_ns) {
        // Everything the data path did since the restore was in the events just read, unless
        // the ring buffer was ever full: the events not read yet are all still in it.
        if (event_bytes_ > maps_.events_capacity() / 2) {
            record_unrestored_leases(*restored_ns);
        }
        return;
    }
    std::vector<Nat64Lease> leases = maps_.leases();
    const auto at_block = leases_by_block(leases);
    std::vector<bool> recorded(leases.size(), false);
    std::vector<Allocation> lost;  // open in the store, gone from the kernel
    // What the data path recorded since OPEN was read (drain_events) only opened allocations:
    // their leases are found unrecorded here, and record_pending skips them as already recorded.
    for (const Allocation& a : open) {
        if (!ledger_.matches_layout(a)) {
            continue;  // closed above
        }
        const int64_t i = at_block[a.block];  // matches_layout: a.block < blocks_.count()
        if (i >= 0 && leases[static_cast<size_t>(i)].subscriber == a.subscriber) {
            recorded[static_cast<size_t>(i)] = true;
        } else {
            lost.push_back(a);
        }
    }
    for (size_t i = 0; i < leases.size(); ++i) {
        if (!recorded[i]) {
            pending_.push_back({{leases[i].subscriber, leases[i].block},
                                wall_time_of_monotonic(leases[i].allocated_ns)});
        }
    }
    record_pending();
    recreate_lost_leases(lost, leases);
    return_orphaned_blocks(leases);
}

// Right after a restore the maps hold exactly the store's restorable allocations, all leased at
// RESTORED_NS, plus what the data path handed out since from the refilled free queue (leased
// later). Those are recorded from their events, but a full ring buffer drops events; when it may
// have been full, the leases are walked once: any lease not stamped with the restore's instant
// is recorded (record_pending skips one already in the store). Nothing can be lost or orphaned
// after a flush, so the comparison with the store and the walk of the owner map are skipped
// either way: at a million leases they took a second of the start.
void Nat64Runtime::record_unrestored_leases(uint64_t restored_ns) {
    for (const Nat64Lease& lease : maps_.leases()) {
        if (lease.allocated_ns != restored_ns) {
            pending_.push_back(
                {{lease.subscriber, lease.block}, wall_time_of_monotonic(lease.allocated_ns)});
        }
    }
    record_pending();
}

// For each block of the layout, the index in LEASES of the lease holding it (-1: none). The owner
// map keeps a block to one subscriber, so one lease per block.
std::vector<int64_t> Nat64Runtime::leases_by_block(const std::vector<Nat64Lease>& leases) const {
    std::vector<int64_t> at_block(blocks_.count(), -1);
    for (size_t i = 0; i < leases.size(); ++i) {
        if (leases[i].block < at_block.size()) {
            at_block[leases[i].block] = static_cast<int64_t>(i);
        }
    }
    return at_block;
}

// Allocations the kernel lost (normally none: a reboot restores them in the reset): re-created
// when their block is still free or theirs, else closed. Re-created ones join LEASES.
void Nat64Runtime::recreate_lost_leases(const std::vector<Allocation>& lost,
                                        std::vector<Nat64Lease>& leases) {
    for (const Allocation& a : lost) {
        const auto block = static_cast<uint32_t>(a.block);
        const auto owner = maps_.owner_of(block);
        if (owner == a.subscriber || maps_.claim_block(block, a.subscriber)) {
            maps_.set_lease(a.subscriber, block, monotonic_ns());
            leases.push_back({a.subscriber, block, 0});
            log_notice("nat64: re-created the lease of " + to_string(a.subscriber) + " (" +
                       describe_block(block) + ") from the store");
        } else {
            ledger_.released(a.subscriber, block, wall_now(), 0, "block-taken-while-down");
        }
    }
}

// A block claimed in the owner map with no lease behind it was being returned (or handed out by
// `subscriber add`) when the previous daemon died: nobody can use it, and nobody would ever free
// it. Its release (if any) is already in the store, so it only goes back to the free queue.
void Nat64Runtime::return_orphaned_blocks(const std::vector<Nat64Lease>& leases) {
    const auto at_block = leases_by_block(leases);
    for (const auto& [block, owner] : maps_.owners()) {
        if (block < at_block.size() && at_block[block] >= 0 &&
            leases[static_cast<size_t>(at_block[block])].subscriber == owner) {
            continue;
        }
        // The data path claims before it leases: a claim made after the walk of the leases
        // above is someone's new block, not an orphan.
        if (auto now = maps_.lease(owner); now && now->block == block) {
            continue;
        }
        for (const Nat64Host& host : maps_.hosts_in(layout_(block).internal)) {
            maps_.remove_host(host);
        }
        maps_.free_block(block);
        log_notice("nat64: block " + std::to_string(block) + " of " + to_string(owner) +
                   " was left claimed without a lease by the previous xlat64d; returned");
    }
}

void Nat64Runtime::tick() {
    try {
        settle_leases(false);  // an import's next chunk would wait for them anyway
    } catch (const std::exception& e) {
        log_error(std::string("nat64: ") + e.what());
    }
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
        next_expiry_ns_ = now + (expire(now) ? kSecond : period * kSecond);
    }
    log_exhaustion();
}

// A host is returned when it has sent nothing for idle_timeout and conntrack holds none of its
// flows; in dynamic mode a block, when its lease is that old and none of its hosts is left.
// Conntrack decides, not the idle time alone: a TCP connection may be silent for hours and must
// keep its mapping (RFC 5382 REQ-5).
bool Nat64Runtime::expire(uint64_t now) {
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
        return false;
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
    std::vector<Nat64Ledger::Release> releases;
    for (const Nat64Lease& lease : idle_leases) {
        if (releases.size() == kIdleReleasesPerPass) {
            break;  // the others are still idle at the next pass
        }
        const NatBlock b = layout_(lease.block);
        if (busy_blocks.count(lease.block) || counts_in(counts, b.internal).total() != 0) {
            continue;
        }
        releases.push_back({lease.subscriber, lease.block, "idle",
                            static_cast<int64_t>((now - lease.allocated_ns) / kSecond)});
    }
    // A store that refuses is tried again at the normal pace, not every second.
    return release_idle(releases) && releases.size() == kIdleReleasesPerPass;
}

// Closed in the store first, all in one commit: the history must never show a block free while it
// is still in use, nor in use by two, and a commit per block (an fsync each) would hold the event
// loop for minutes when a reboot's restored leases all turn idle in the same pass.
bool Nat64Runtime::release_idle(const std::vector<Nat64Ledger::Release>& releases) {
    if (releases.empty()) {
        return true;
    }
    try {
        ledger_.released(releases, wall_now());
    } catch (const StoreError& e) {
        log_error("nat64: keeping " + std::to_string(releases.size()) +
                  " idle blocks for now: " + e.what());
        return false;
    }
    for (const Nat64Ledger::Release& r : releases) {
        maps_.forget_lease(r.subscriber);
        releasing_.push_back({r.subscriber, r.block});
    }
    return true;
}

// The second half of a release. A program that read the lease just before it was forgotten may
// have given a host an address in the block since; such a host is removed too, so the block is
// clean when the next subscriber gets it.
void Nat64Runtime::finish_releases() {
    if (releasing_.empty()) {
        return;
    }
    for (const Owner& o : releasing_) {
        const NatBlock b = layout_(o.block);
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
    const NatBlock b = layout_(owner.block);
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
    settle_leases();
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
        {"inbound_drops", table_.forward_drops()},
        {"spoofed_source_drops", table_.spoofed_source_drops().packets}};
}

std::optional<Counter> Nat64Runtime::spoofed_source_counter() {
    try {
        const NatDropCounter dropped = table_.spoofed_source_drops();
        return Counter{"nat64_spoofed_internal_source", dropped.packets, dropped.bytes, true,
                       "IPv4 from the NAT64 internal pool arriving on neither the translator "
                       "device nor an ingress fast path interface (a spoofed subscriber address), "
                       "dropped by nftables before NAT"};
    } catch (const std::exception& e) {
        log_warning("stats: reading the spoofed-source drops of nftables table ip " +
                    table_.name() + ": " + e.what());
        return std::nullopt;
    }
}

nlohmann::json Nat64Runtime::subscribers() {
    settle_leases();
    const auto hosts = maps_.hosts();
    const auto counts = conntrack_.count_by_source(config_.internal_pool);
    nlohmann::json out = nlohmann::json::array();
    for (const Owner& o : owners(hosts)) {
        out.push_back(subscriber_json(o, hosts, counts));
    }
    return out;
}

nlohmann::json Nat64Runtime::subscriber(const std::string& text) {
    settle_leases();
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
    const NatBlock b = layout_(*block);
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
    if (config_.session_counters) {
        if (auto counter = table_.read_block(b.internal)) {
            out["sessions_created"] = counter->sessions;
        }
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
    if (mask_address(prefix->addr, prefix->len) != prefix->addr) {
        throw std::runtime_error(
            text + " has host bits set; use " +
            to_string(Ipv6Prefix{mask_address(prefix->addr, prefix->len), prefix->len}));
    }
    if (auto problem = admission_problem(*prefix); !problem.empty()) {
        throw std::runtime_error(text + problem);
    }
    return *prefix;
}

// Why PREFIX (host bits clear) cannot be a subscriber of this configuration ("" if it can),
// to be appended to the prefix as written.
std::string Nat64Runtime::admission_problem(const Ipv6Prefix& prefix) const {
    if (prefix.len != config_.subscriber_length) {
        return " is a /" + std::to_string(prefix.len) + "; subscribers are /" +
               std::to_string(config_.subscriber_length) + " (nat64.subscriber_length)";
    }
    if (!subscribers_.index_of(prefix.addr)) {
        std::string admitted;
        for (const Ipv6Prefix& p : config_.prefixes) {
            admitted += (admitted.empty() ? "" : ", ") + to_string(p);
        }
        return " is in none of the admitted nat64.prefixes (" + admitted + ")";
    }
    return "";
}

// Commit first, then the kernel: the block is taken from the free queue and claimed (so the data
// path cannot hand it out meanwhile), recorded, and only then does the subscriber resolve to it.
std::optional<uint32_t> Nat64Runtime::lease_block_now(const Ipv6Prefix& subscriber) {
    if (auto lease = maps_.lease(subscriber)) {
        return lease->block;
    }
    const std::optional<uint32_t> block =
        maps_.claim_free_block(subscriber, static_cast<uint32_t>(blocks_.count()));
    if (!block) {
        return std::nullopt;
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

nlohmann::json Nat64Runtime::add_subscriber(const std::string& text, const std::string& account) {
    settle_leases();
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
    const NatBlock b = layout_(*block);
    out["block"] = *block;
    out["public_address"] = to_string(b.public_address);
    out["ports"] = std::to_string(b.first_port) + "-" + std::to_string(b.last_port);
    out["internal"] = to_string(b.internal);
    return out;
}

nlohmann::json Nat64Runtime::import_subscribers(const ImportRequest& request) {
    if (request.check) {
        settle_leases();
        return check_chunk(request);
    }
    ParsedImport parsed = admitted(request.text, 1);
    if (parsed.problem_count > 0) {
        // The CLI checked the chunk first; this is a file changed in between or another client.
        throw std::runtime_error("line " + std::to_string(parsed.problems.front().line) +
                                 " of the chunk: " + parsed.problems.front().message +
                                 "; nothing of this chunk was imported");
    }
    std::vector<Subscriber> subscribers;
    subscribers.reserve(parsed.subscribers.size());
    const int64_t now = wall_now();
    for (SubscriberLine& s : parsed.subscribers) {
        subscribers.push_back({s.prefix, std::move(s.account), now});
    }
    return import_chunk(subscribers, request.pipelined);
}

// TEXT's subscribers that this configuration admits, and what is wrong with the others (in line
// order: the first MAX_SHOWN, and how many in all).
ParsedImport Nat64Runtime::admitted(const std::string& text, size_t max_shown) const {
    ParsedImport parsed = parse_subscriber_import(text, max_shown);
    std::vector<ImportProblem> refused;
    size_t kept = 0;
    for (size_t i = 0; i < parsed.subscribers.size(); ++i) {
        const SubscriberLine& s = parsed.subscribers[i];
        if (auto problem = admission_problem(s.prefix); !problem.empty()) {
            if (refused.size() < max_shown) {
                refused.push_back({s.line, to_string(s.prefix) + problem});
            }
            ++parsed.problem_count;
        } else if (kept++ != i) {
            parsed.subscribers[kept - 1] = std::move(parsed.subscribers[i]);
        }
    }
    parsed.subscribers.resize(kept);
    if (!refused.empty()) {
        std::move(refused.begin(), refused.end(), std::back_inserter(parsed.problems));
        std::sort(parsed.problems.begin(), parsed.problems.end(),
                  [](const ImportProblem& a, const ImportProblem& b) { return a.line < b.line; });
        parsed.problems.resize(std::min(parsed.problems.size(), max_shown));
    }
    return parsed;
}

// Line-numbered problems (the chunk's own line numbers: the CLI maps them to the file's), and the
// counts the CLI needs to tell whether the pool can take the whole file.
nlohmann::json Nat64Runtime::check_chunk(const ImportRequest& request) {
    const ParsedImport parsed = admitted(request.text, kImportProblemsShown);
    const bool dynamic = config_.mode == Nat64Mode::dynamic;
    nlohmann::json list = nlohmann::json::array();
    for (const ImportProblem& p : parsed.problems) {
        list.push_back({{"line", p.line}, {"error", p.message}});
    }
    nlohmann::json out = {{"problems", list},
                          {"problem_count", parsed.problem_count},
                          {"mode", dynamic ? "dynamic" : "deterministic"}};
    if (dynamic && request.count_free) {
        const uint64_t owned = maps_.owners().size();
        out["free_blocks"] = blocks_.count() - std::min<uint64_t>(owned, blocks_.count());
    }
    if (dynamic && request.count_unleased) {
        size_t unleased = 0;
        for (const SubscriberLine& s : parsed.subscribers) {
            unleased += !maps_.lease(s.prefix);
        }
        out["unleased"] = unleased;
    }
    return out;
}

// Claims made on the kernel thread of an import, handed to the SQLite thread in batches: the
// allocation rows are written while the next blocks are claimed. The claimer finishes (done or
// failed) exactly once; a failed claimer has given its blocks back itself.
class Nat64Runtime::ClaimStream {
  public:
    static constexpr size_t kBatch = 1024;
    // Claims waiting for the SQLite thread, at most: the kernel side is the faster one, and a
    // chunk's worth of allocations waiting in memory would only raise the import's peak.
    static constexpr size_t kBacklog = 8 * kBatch;

    void push(Allocation allocation) {
        batch_.push_back(std::move(allocation));
        if (batch_.size() >= kBatch) {
            publish(false, nullptr);
        }
    }
    void finish() { publish(true, nullptr); }
    void fail(std::exception_ptr error) { publish(true, std::move(error)); }
    // The SQLite thread gives up (its transaction failed): the claimer stops at its next block.
    void cancel() {
        {
            std::lock_guard lock(mutex_);
            cancelled_ = true;
        }
        room_.notify_one();
    }
    bool cancelled() const { return cancelled_; }

    // Appends the next claims to OUT; false once there are no more. Rethrows the claimer's error.
    bool next(std::vector<Allocation>& out) {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return !shared_.empty() || done_; });
        if (error_) {
            std::rethrow_exception(error_);
        }
        if (shared_.empty()) {
            return false;
        }
        if (out.empty()) {
            out.swap(shared_);
        } else {
            std::move(shared_.begin(), shared_.end(), std::back_inserter(out));
            shared_.clear();
        }
        lock.unlock();
        room_.notify_one();
        return true;
    }

  private:
    void publish(bool done, std::exception_ptr error) {
        {
            std::unique_lock lock(mutex_);
            room_.wait(lock, [&] { return done || shared_.size() < kBacklog || cancelled_; });
            std::move(batch_.begin(), batch_.end(), std::back_inserter(shared_));
            done_ = done;
            error_ = std::move(error);
        }
        batch_.clear();
        ready_.notify_one();
    }

    std::vector<Allocation> batch_;  // the claimer's, not yet published
    std::mutex mutex_;
    std::condition_variable ready_;
    std::condition_variable room_;  // the claimer waits for it past kBacklog
    std::vector<Allocation> shared_;
    bool done_ = false;
    std::exception_ptr error_;
    std::atomic<bool> cancelled_ = false;
};

// Blocks for the subscribers of the chunk that hold none, taken from the free queue and claimed
// in the owner map (Nat64Maps::claim_blocks: the steps of claim_free_block, which
// lease_block_now uses, a batch per bpf() call).
// All returned to the queue if the pool runs dry; on a cancel, the caller returns them.
Nat64Runtime::ChunkClaims Nat64Runtime::claim_blocks(
    const std::vector<Subscriber>& subscribers, int64_t from, ClaimStream& stream,
    const std::shared_future<LeaseOutcome>& before) {
    // Batches of log lines: a million allocations must not cost a million writes (nor one of
    // 200 MB).
    constexpr size_t kLinesPerWrite = 1024;
    // One run of xlat64_n64_batch at a time, so that the SQLite thread gets claims as they come
    // and a cancel stops within one.
    constexpr size_t kClaimsPerCall = XLAT64_N64_BATCH_MAX;
    const std::string time = iso8601(from);
    ChunkClaims out;
    try {
        // The chunk before's leases first: a subscriber in both must be found leased here.
        if (before.valid() && before.get().error) {
            throw std::runtime_error("the leases of the chunk before could not all be added");
        }
        std::vector<Ipv6Prefix> prefixes;
        for (size_t first = 0; first < subscribers.size() && !stream.cancelled();
             first += kClaimsPerCall) {
            const size_t last = std::min(subscribers.size(), first + kClaimsPerCall);
            prefixes.clear();
            for (size_t i = first; i < last; ++i) {
                prefixes.push_back(subscribers[i].prefix);
            }
            const std::vector<Nat64Claim> claims =
                maps_.claim_blocks(prefixes, static_cast<uint32_t>(blocks_.count()));
            for (size_t i = 0; i < claims.size(); ++i) {
                if (claims[i].kind == Nat64Claim::Kind::has_lease) {
                    ++out.already_leased;
                    continue;
                }
                if (claims[i].kind == Nat64Claim::Kind::pool_empty) {
                    throw std::runtime_error(
                        "subscribers of this chunk need more port blocks than the " +
                        std::to_string(out.blocks.size()) + " that were free");
                }
                out.blocks.emplace_back(first + i, claims[i].block);
                Allocation allocation =
                    ledger_.imported(subscribers[first + i], claims[i].block, from);
                if (out.blocks.size() % kLinesPerWrite == 1) {
                    out.log_lines.emplace_back();
                }
                out.log_lines.back() += ledger_.allocate_line(allocation, time);
                stream.push(std::move(allocation));
            }
        }
        stream.finish();
    } catch (...) {
        give_back(out.blocks);
        stream.fail(std::current_exception());
        throw;
    }
    return out;
}

// Each subscriber of LEASES resolves to its block from now on, unless its first packet got it one
// from the data path meanwhile: those are superseded (the caller records and frees them). Runs on
// a second thread, so an error is handed back with how far it got, not thrown.
Nat64Runtime::LeaseOutcome Nat64Runtime::add_leases(const std::vector<Owner>& leases) {
    LeaseOutcome out;
    Nat64LeaseProgress progress;
    try {
        maps_.add_leases(leases, monotonic_ns(), progress);
    } catch (...) {
        out.error = std::current_exception();
    }
    out.done = progress.done;
    for (size_t i : progress.superseded) {
        out.superseded.push_back(leases[i]);
    }
    return out;
}

void Nat64Runtime::give_back(const Nat64Ledger::Leases& blocks) {
    for (const auto& [index, block] : blocks) {
        maps_.free_block(block);
    }
}

// One chunk, all or nothing: blocks claimed (not yet used by anyone), then the subscribers and
// their allocations committed in one transaction, and only then does each subscriber resolve to
// its block (commit before the kernel, as for `subscriber add`). Subscribers that hold a block
// keep it: importing a file again changes nothing but account ids.
//
// The work splits between SQLite and bpf(), so it runs on two threads (record_chunk, then
// lease_chunk); the order of each block's steps is unchanged: claimed, committed, leased.
nlohmann::json Nat64Runtime::import_chunk(const std::vector<Subscriber>& subscribers,
                                          bool pipelined) {
    if (config_.mode == Nat64Mode::dynamic) {
        // The data path's allocations so far in the store first, so none conflicts with ours.
        drain_events();
        record_pending();
    }
    ChunkClaims claims;
    std::vector<Store::SubscriberChange> changes;
    try {
        changes = record_chunk(subscribers, claims);
    } catch (...) {
        settle_leases();  // a failure of the chunk before's leases is the one to tell
        throw;
    }
    // The chunk before's leases are added (this chunk's claimer waited for them): its superseded
    // blocks are counted here, so that the answers of a whole import add up.
    size_t superseded = settle_leases();
    superseded += lease_chunk(subscribers, claims, pipelined);
    size_t added = 0;
    size_t updated = 0;
    for (Store::SubscriberChange c : changes) {
        added += c == Store::SubscriberChange::added;
        updated += c == Store::SubscriberChange::updated;
    }
    return {{"subscribers", subscribers.size()},
            {"added", added},
            {"updated", updated},
            {"unchanged", subscribers.size() - added - updated},
            {"leased", claims.blocks.size() - std::min(superseded, claims.blocks.size())},
            {"already_leased", claims.already_leased}};
}

// The blocks are claimed (and their log lines formatted) on a second thread while this one
// writes the subscribers, and handed over in batches as the allocation rows are written. Fills
// CLAIMS once committed; on failure every block claimed is back in the free queue.
std::vector<Store::SubscriberChange> Nat64Runtime::record_chunk(
    const std::vector<Subscriber>& subscribers, ChunkClaims& claims) {
    const int64_t from = wall_now();
    ClaimStream stream;
    std::future<ChunkClaims> claiming;
    if (config_.mode == Nat64Mode::dynamic) {
        const std::shared_future<LeaseOutcome> before =
            leasing_ ? leasing_->outcome : std::shared_future<LeaseOutcome>();
        claiming = std::async(std::launch::async, [&, before] {
            return claim_blocks(subscribers, from, stream, before);
        });
    } else {
        stream.finish();  // the configuration gives every subscriber its block
    }
    try {
        auto changes = ledger_.import(
            subscribers, [&](std::vector<Allocation>& batch) { return stream.next(batch); });
        if (claiming.valid()) {
            claims = claiming.get();  // done: the stream ended
        }
        return changes;
    } catch (...) {
        stream.cancel();
        if (claiming.valid()) {
            try {
                give_back(claiming.get().blocks);
            } catch (...) {
                // A failed claimer gave its blocks back itself; the first error is the one told.
            }
        }
        throw;
    }
}

// After the commit: the leases are added on a second thread while the allocations are logged
// here. PIPELINED: the caller answers meanwhile, and settle_leases() finishes the chunk later
// (returns 0); else returns how many blocks were superseded (and returned).
size_t Nat64Runtime::lease_chunk(const std::vector<Subscriber>& subscribers,
                                 const ChunkClaims& claims, bool pipelined) {
    if (claims.blocks.empty()) {
        return 0;
    }
    auto leasing = std::make_unique<Leasing>();
    leasing->leases.reserve(claims.blocks.size());
    for (const auto& [index, block] : claims.blocks) {
        leasing->leases.push_back({subscribers[index].prefix, block});
    }
    const std::vector<Owner>& leases = leasing->leases;
    leasing->outcome =
        std::async(std::launch::async, [this, &leases] { return add_leases(leases); }).share();
    leasing_ = std::move(leasing);
    for (const std::string& lines : claims.log_lines) {
        ledger_.log_lines(lines);
    }
    return pipelined ? 0 : settle_leases();
}

// When a lease cannot be added, the blocks not leased yet are returned as well (their allocations
// closed) and the error thrown: the subscribers stay imported, and each gets a block from the
// data path at its first packet. Superseded: the subscriber's first packet got it a block from
// the data path meanwhile; that one stays (and is recorded from its event), ours is returned.
size_t Nat64Runtime::settle_leases(bool wait) {
    if (!leasing_ || (!wait && leasing_->outcome.wait_for(std::chrono::seconds(0)) !=
                                   std::future_status::ready)) {
        return 0;
    }
    const std::unique_ptr<Leasing> leasing = std::move(leasing_);
    const LeaseOutcome& outcome = leasing->outcome.get();
    std::vector<Nat64Ledger::Release> unused;
    for (const Owner& o : outcome.superseded) {
        unused.push_back({o.subscriber, o.block, "superseded"});
    }
    for (size_t i = outcome.done; i < leasing->leases.size(); ++i) {
        unused.push_back({leasing->leases[i].subscriber, leasing->leases[i].block, "lease-failed"});
    }
    std::string failure;
    if (outcome.error) {
        failure = "the chunk's subscribers are imported, but after " +
                  std::to_string(outcome.done - outcome.superseded.size()) + " of its " +
                  std::to_string(leasing->leases.size()) +
                  " port blocks were leased: " + what_of(outcome.error);
    }
    try {
        return_unused(unused);
    } catch (const std::exception& e) {
        throw std::runtime_error((failure.empty() ? "" : failure + "; ") + "returning " +
                                 std::to_string(unused.size()) +
                                 " unused port blocks failed (they stay claimed until xlat64d "
                                 "restarts): " +
                                 e.what());
    }
    record_pending();  // the data path's allocations that ours held up
    if (outcome.error) {
        throw std::runtime_error(failure + "; the other " +
                                 std::to_string(leasing->leases.size() - outcome.done) +
                                 " were returned (their subscribers get one at their first "
                                 "packet)");
    }
    return outcome.superseded.size();
}

// Blocks claimed and committed but not leased: closed in the store (one commit) before they go
// back to the free queue, so the history never shows a free block as held. If the store refuses,
// they stay claimed, and the next start re-creates their leases from the open allocations.
void Nat64Runtime::return_unused(const std::vector<Nat64Ledger::Release>& blocks) {
    ledger_.released(blocks, wall_now());
    for (const Nat64Ledger::Release& u : blocks) {
        maps_.free_block(u.block);
    }
}

nlohmann::json Nat64Runtime::remove_subscriber(const std::string& text) {
    settle_leases();
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
