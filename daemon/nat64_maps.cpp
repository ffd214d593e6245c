#include "daemon/nat64_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <linux/if_ether.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "kmod-shim/xlat64_abi.h"

namespace xlat64 {
namespace {

[[noreturn]] void fail(const std::string& what, int err) {
    throw std::runtime_error(what + ": " + std::strerror(err < 0 ? -err : err));
}

// Inserts KEY -> VALUE unless KEY is there: false when it is. WHAT() names the step for an error
// (built only then: imports claim a million blocks).
template <typename What>
bool insert_new(int fd, const void* key, const void* value, What what) {
    int err = bpf_map_update_elem(fd, key, value, BPF_NOEXIST);
    if (err == -EEXIST) {
        return false;
    }
    if (err) {
        fail(what(), err);
    }
    return true;
}

// Every key of a hash or trie map. Bounded, so that a map changing under the walk (the data path
// adds hosts all the time) cannot keep it going forever; a key deleted meanwhile restarts the
// kernel's walk, which at worst repeats keys.
template <typename Key>
std::vector<Key> keys_of(int fd, const char* name, uint64_t bound) {
    std::vector<Key> keys;
    Key key{};
    Key next{};
    bool first = true;
    for (uint64_t i = 0; i <= bound; ++i) {
        int err = bpf_map_get_next_key(fd, first ? nullptr : &key, &next);
        if (err == -ENOENT) {
            break;
        }
        if (err) {
            fail(std::string("reading ") + name, err);
        }
        first = false;
        key = next;
        keys.push_back(key);
    }
    return keys;
}

// Entries per BPF_MAP_*_BATCH call: large enough that a million entries cost a few hundred system
// calls, and above any hash bucket's length (the kernel refuses a batch smaller than a bucket).
constexpr uint32_t kBatch = 8192;

// Every entry of a hash map, read with BPF_MAP_LOOKUP_BATCH: a million leases in a few hundred
// system calls instead of two per entry (get_next_key and lookup).
template <typename Key, typename Value>
std::vector<std::pair<Key, Value>> entries_of(int fd, const char* name) {
    std::vector<Key> keys(kBatch);
    std::vector<Value> values(kBatch);
    std::vector<std::pair<Key, Value>> out;
    uint32_t token = 0;
    bool first = true;
    while (true) {
        uint32_t count = kBatch;
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data(),
                                       values.data(), &count, nullptr);
        if (err && err != -ENOENT) {
            fail(std::string("reading ") + name, err);
        }
        for (uint32_t i = 0; i < count; ++i) {
            out.emplace_back(keys[i], values[i]);
        }
        if (err == -ENOENT) {
            return out;
        }
        first = false;
    }
}

// KEYS[i] -> VALUES[i] with BPF_MAP_UPDATE_BATCH (BPF_ANY: the kernel takes no BPF_NOEXIST in a
// batch, so callers use it only where nobody else can be writing those keys).
template <typename Key, typename Value>
void update_all(int fd, const char* name, const std::vector<Key>& keys,
                const std::vector<Value>& values) {
    for (size_t done = 0; done < keys.size();) {
        uint32_t count = static_cast<uint32_t>(std::min<size_t>(kBatch, keys.size() - done));
        int err = bpf_map_update_batch(fd, &keys[done], &values[done], &count, nullptr);
        if (err) {
            fail(std::string("writing ") + std::to_string(keys.size()) + " entries to " + name,
                 err);
        }
        done += count;
    }
}

template <typename Key>
void delete_all(int fd, const char* name, uint64_t bound) {
    for (const Key& key : keys_of<Key>(fd, name, bound)) {
        int err = bpf_map_delete_elem(fd, &key);
        if (err && err != -ENOENT) {
            fail(std::string("clearing ") + name, err);
        }
    }
}

Ipv6Address to_address(const in6_addr& a) {
    Ipv6Address out;
    std::memcpy(out.data(), a.s6_addr, out.size());
    return out;
}

in6_addr to_in6(const Ipv6Address& a) {
    in6_addr out{};
    std::memcpy(out.s6_addr, a.data(), a.size());
    return out;
}

// A subscriber's key in the lease and owner maps: its prefix with the host bits cleared.
in6_addr subscriber_key(const Ipv6Prefix& subscriber) {
    return to_in6(mask_address(subscriber.addr, subscriber.len));
}

// One run of xlat64_n64_batch over BATCH in SLOT: written, run, read back (three bpf() calls
// for up to XLAT64_N64_BATCH_MAX subscribers).
void run_batch(const Nat64MapFds& fds, uint32_t slot, xlat_n64_batch& batch) {
    int err = bpf_map_update_elem(fds.batch, &slot, &batch, BPF_ANY);
    if (err) {
        fail("writing a batch of " + std::to_string(batch.count) + " subscribers", err);
    }
    // XDP's test run wants at least an Ethernet header; only the first byte means anything.
    std::array<unsigned char, ETH_HLEN> packet{};
    packet[0] = static_cast<unsigned char>(slot);
    LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = packet.data(), .data_size_in = packet.size());
    err = bpf_prog_test_run_opts(fds.batch_program, &run);
    if (err || run.retval != XDP_PASS) {
        fail("running xlat64_n64_batch over " + std::to_string(batch.count) + " subscribers",
             err ? err : EINVAL);
    }
    err = bpf_map_lookup_elem(fds.batch, &slot, &batch);
    if (err) {
        fail("reading the results of a batch of " + std::to_string(batch.count) + " subscribers",
             err);
    }
}

std::unique_ptr<xlat_n64_batch> new_batch(uint32_t op, size_t count) {
    auto batch = std::make_unique<xlat_n64_batch>();
    batch->op = op;
    batch->count = static_cast<uint32_t>(count);
    for (size_t i = 0; i < count; ++i) {
        batch->entries[i].result = XLAT_N64_BATCH_NOT_RUN;
    }
    return batch;
}

}  // namespace

std::vector<Nat64PrefixEntry> Nat64Maps::prefixes() const {
    std::vector<Nat64PrefixEntry> out;
    for (const auto& key :
         keys_of<xlat_lpm6_key>(fds_.prefixes, XLAT64_MAP_N64_PREFIXES, XLAT64_N64_PREFIXES_MAX)) {
        xlat_n64_prefix value{};
        if (bpf_map_lookup_elem(fds_.prefixes, &key, &value) != 0) {
            continue;
        }
        Nat64PrefixEntry e;
        std::memcpy(e.prefix.addr.data(), key.addr, e.prefix.addr.size());
        e.prefix.len = static_cast<uint8_t>(key.prefixlen);
        e.first_subscriber = value.first_subscriber;
        out.push_back(e);
    }
    std::sort(out.begin(), out.end());
    return out;
}

void Nat64Maps::set_prefixes(const std::vector<Nat64PrefixEntry>& want) {
    for (const Nat64PrefixEntry& have : prefixes()) {
        if (std::find(want.begin(), want.end(), have) == want.end()) {
            xlat_lpm6_key key{have.prefix.len, {}};
            std::memcpy(key.addr, have.prefix.addr.data(), sizeof(key.addr));
            int err = bpf_map_delete_elem(fds_.prefixes, &key);
            if (err && err != -ENOENT) {
                fail("removing NAT64 prefix " + to_string(have.prefix), err);
            }
        }
    }
    for (const Nat64PrefixEntry& e : want) {
        xlat_lpm6_key key{e.prefix.len, {}};
        std::memcpy(key.addr, e.prefix.addr.data(), sizeof(key.addr));
        xlat_n64_prefix value{};
        value.first_subscriber = e.first_subscriber;
        value.prefix_len = e.prefix.len;
        int err = bpf_map_update_elem(fds_.prefixes, &key, &value, BPF_ANY);
        if (err) {
            fail("adding NAT64 prefix " + to_string(e.prefix), err);
        }
    }
}

void Nat64Maps::flush() {
    // Leases first, so that no new host lands in a block whose hosts are being removed.
    delete_all<in6_addr>(fds_.subscribers, XLAT64_MAP_N64_SUBS, XLAT64_N64_BLOCKS_MAX);
    delete_all<uint32_t>(fds_.owners, XLAT64_MAP_N64_OWNERS, XLAT64_N64_BLOCKS_MAX);
    delete_all<in6_addr>(fds_.hosts6, XLAT64_MAP_N64_HOSTS6, XLAT64_N64_HOSTS_MAX);
    delete_all<uint32_t>(fds_.hosts4, XLAT64_MAP_N64_HOSTS4, XLAT64_N64_HOSTS_MAX);
    uint32_t block = 0;
    for (uint64_t i = 0; i <= XLAT64_N64_BLOCKS_MAX; ++i) {
        int err = bpf_map_lookup_and_delete_elem(fds_.free_blocks, nullptr, &block);
        if (err == -ENOENT) {
            break;
        }
        if (err) {
            fail("emptying " XLAT64_MAP_N64_FREE, err);
        }
    }
}

// One system call per block: queue maps have no batch operations.
void Nat64Maps::push_free_blocks(const std::vector<uint32_t>& blocks) {
    for (uint32_t block : blocks) {
        int err = bpf_map_update_elem(fds_.free_blocks, nullptr, &block, BPF_ANY);
        if (err) {
            fail("queueing free block " + std::to_string(block) + " in " XLAT64_MAP_N64_FREE, err);
        }
    }
}

std::vector<Nat64Lease> Nat64Maps::leases() const {
    std::vector<Nat64Lease> out;
    const auto entries = entries_of<in6_addr, xlat_n64_sub>(fds_.subscribers, XLAT64_MAP_N64_SUBS);
    out.reserve(entries.size());
    for (const auto& [key, value] : entries) {
        out.push_back({{to_address(key), sub_len_}, value.block, value.allocated_ns});
    }
    return out;
}

std::optional<Nat64Lease> Nat64Maps::lease(const Ipv6Prefix& subscriber) const {
    in6_addr key = subscriber_key(subscriber);
    xlat_n64_sub value{};
    if (bpf_map_lookup_elem(fds_.subscribers, &key, &value) != 0) {
        return std::nullopt;
    }
    return Nat64Lease{{to_address(key), sub_len_}, value.block, value.allocated_ns};
}

std::vector<Nat64Host> Nat64Maps::hosts() const {
    std::vector<Nat64Host> out;
    const auto entries = entries_of<in6_addr, xlat_n64_host>(fds_.hosts6, XLAT64_MAP_N64_HOSTS6);
    out.reserve(entries.size());
    for (const auto& [key, value] : entries) {
        Nat64Host h;
        h.host = to_address(key);
        std::memcpy(h.internal.data(), &value.internal, 4);
        h.block = value.block;
        h.last_seen_ns = value.last_seen_ns;
        out.push_back(h);
    }
    return out;
}

std::vector<Nat64Host> Nat64Maps::hosts_in(const Ipv4Prefix& internal) const {
    std::vector<Nat64Host> out;
    const uint32_t base = ntohl([&] {
        uint32_t v;
        std::memcpy(&v, internal.addr.data(), 4);
        return v;
    }());
    const uint64_t size = uint64_t{1} << (32 - internal.len);
    for (uint64_t i = 0; i < size; ++i) {
        uint32_t key = htonl(base + static_cast<uint32_t>(i));
        in6_addr host{};
        if (bpf_map_lookup_elem(fds_.hosts4, &key, &host) != 0) {
            continue;
        }
        Nat64Host h;
        h.host = to_address(host);
        std::memcpy(h.internal.data(), &key, 4);
        xlat_n64_host value{};
        if (bpf_map_lookup_elem(fds_.hosts6, &host, &value) == 0) {
            h.block = value.block;
            h.last_seen_ns = value.last_seen_ns;
        }
        out.push_back(h);
    }
    return out;
}

std::optional<Ipv6Prefix> Nat64Maps::owner_of(uint32_t block) const {
    in6_addr sub{};
    if (bpf_map_lookup_elem(fds_.owners, &block, &sub) != 0) {
        return std::nullopt;
    }
    return Ipv6Prefix{to_address(sub), sub_len_};
}

std::vector<std::pair<uint32_t, Ipv6Prefix>> Nat64Maps::owners() const {
    std::vector<std::pair<uint32_t, Ipv6Prefix>> out;
    const auto entries = entries_of<uint32_t, in6_addr>(fds_.owners, XLAT64_MAP_N64_OWNERS);
    out.reserve(entries.size());
    for (const auto& [block, sub] : entries) {
        out.emplace_back(block, Ipv6Prefix{to_address(sub), sub_len_});
    }
    return out;
}

// Only after flush(): the free queue is empty, so the data path can hand out no block and take
// no subscriber meanwhile, and batches without BPF_NOEXIST cannot overwrite anyone's claim.
void Nat64Maps::restore_leases(const std::vector<std::pair<Ipv6Prefix, uint32_t>>& leases,
                               uint64_t allocated_ns) {
    std::vector<uint32_t> blocks;
    std::vector<in6_addr> subscribers;
    std::vector<xlat_n64_sub> values;
    blocks.reserve(leases.size());
    subscribers.reserve(leases.size());
    values.reserve(leases.size());
    for (const auto& [subscriber, block] : leases) {
        blocks.push_back(block);
        subscribers.push_back(subscriber_key(subscriber));
        xlat_n64_sub value{};
        value.block = block;
        value.allocated_ns = allocated_ns;
        values.push_back(value);
    }
    // Claims first, as the data path does: a subscriber never resolves to an unclaimed block.
    update_all(fds_.owners, XLAT64_MAP_N64_OWNERS, blocks, subscribers);
    update_all(fds_.subscribers, XLAT64_MAP_N64_SUBS, subscribers, values);
}

bool Nat64Maps::add_lease(const Ipv6Prefix& subscriber, uint32_t block, uint64_t allocated_ns) {
    in6_addr key = subscriber_key(subscriber);
    xlat_n64_sub value{};
    value.block = block;
    value.allocated_ns = allocated_ns;
    return insert_new(fds_.subscribers, &key, &value, [&] {
        return "leasing block " + std::to_string(block) + " to " + to_string(subscriber);
    });
}

std::optional<uint32_t> Nat64Maps::pop_free_block() {
    uint32_t block = 0;
    int err = bpf_map_lookup_and_delete_elem(fds_.free_blocks, nullptr, &block);
    if (err == -ENOENT) {
        return std::nullopt;
    }
    if (err) {
        fail("taking a free block from " XLAT64_MAP_N64_FREE, err);
    }
    return block;
}

bool Nat64Maps::claim_block(uint32_t block, const Ipv6Prefix& subscriber) {
    in6_addr sub = subscriber_key(subscriber);
    return insert_new(fds_.owners, &block, &sub, [&] {
        return "claiming block " + std::to_string(block) + " for " + to_string(subscriber);
    });
}

void Nat64Maps::set_lease(const Ipv6Prefix& subscriber, uint32_t block, uint64_t allocated_ns) {
    in6_addr key = subscriber_key(subscriber);
    xlat_n64_sub value{};
    value.block = block;
    value.allocated_ns = allocated_ns;
    int err = bpf_map_update_elem(fds_.subscribers, &key, &value, BPF_ANY);
    if (err) {
        fail("leasing block " + std::to_string(block) + " to " + to_string(subscriber), err);
    }
}

void Nat64Maps::remove_host(const Nat64Host& host) {
    in6_addr key6 = to_in6(host.host);
    uint32_t key4;
    std::memcpy(&key4, host.internal.data(), 4);
    // The IPv6 side first: the host's next packet then claims an address anew instead of using
    // one that is about to go.
    int err = bpf_map_delete_elem(fds_.hosts6, &key6);
    if (err && err != -ENOENT) {
        fail("removing NAT64 host " + to_string(host.host), err);
    }
    in6_addr holder{};
    if (bpf_map_lookup_elem(fds_.hosts4, &key4, &holder) == 0 &&
        std::memcmp(&holder, &key6, sizeof(holder)) == 0) {
        err = bpf_map_delete_elem(fds_.hosts4, &key4);
        if (err && err != -ENOENT) {
            fail("removing NAT64 address " + to_string(host.internal), err);
        }
    }
}

void Nat64Maps::forget_lease(const Ipv6Prefix& subscriber) {
    in6_addr key = subscriber_key(subscriber);
    int err = bpf_map_delete_elem(fds_.subscribers, &key);
    if (err && err != -ENOENT) {
        fail("releasing the block of " + to_string(subscriber), err);
    }
}

uint64_t Nat64Maps::events_capacity() const {
    bpf_map_info info{};
    uint32_t length = sizeof(info);
    int err = bpf_obj_get_info_by_fd(fds_.events, &info, &length);
    if (err) {
        fail("reading the size of " XLAT64_MAP_EVENTS, err);
    }
    return info.max_entries;
}

void Nat64Maps::free_block(uint32_t block) {
    int err = bpf_map_delete_elem(fds_.owners, &block);
    if (err && err != -ENOENT) {
        fail("releasing block " + std::to_string(block), err);
    }
    push_free_blocks({block});
}

std::optional<uint32_t> Nat64Maps::claim_free_block(const Ipv6Prefix& subscriber,
                                                    uint32_t block_count) {
    while (std::optional<uint32_t> block = pop_free_block()) {
        // Stale or already owned: the owner map decides, as for the data path.
        if (*block < block_count && claim_block(*block, subscriber)) {
            return block;
        }
    }
    return std::nullopt;
}

std::vector<Nat64Claim> Nat64Maps::claim_blocks(const std::vector<Ipv6Prefix>& subscribers,
                                                uint32_t block_count) {
    std::vector<Nat64Claim> out;
    out.reserve(subscribers.size());
    if (has_batch_program()) {
        for (size_t first = 0; first < subscribers.size(); first += XLAT64_N64_BATCH_MAX) {
            const size_t count = std::min<size_t>(XLAT64_N64_BATCH_MAX, subscribers.size() - first);
            if (!claim_batch(subscribers, first, count, block_count, out)) {
                break;
            }
        }
        return out;
    }
    for (const Ipv6Prefix& subscriber : subscribers) {
        if (lease(subscriber)) {
            out.push_back({Nat64Claim::Kind::has_lease});
        } else if (std::optional<uint32_t> block = claim_free_block(subscriber, block_count)) {
            out.push_back({Nat64Claim::Kind::claimed, *block});
        } else {
            out.push_back({Nat64Claim::Kind::pool_empty});
            break;
        }
    }
    return out;
}

bool Nat64Maps::claim_batch(const std::vector<Ipv6Prefix>& subscribers, size_t first, size_t count,
                            uint32_t block_count, std::vector<Nat64Claim>& out) {
    auto batch = new_batch(XLAT_N64_BATCH_CLAIM, count);
    batch->block_count = block_count;
    for (size_t i = 0; i < count; ++i) {
        const Ipv6Prefix& s = subscribers[first + i];
        const in6_addr key = subscriber_key(s);
        std::memcpy(batch->entries[i].subscriber, &key, sizeof(key));
    }
    run_batch(fds_, XLAT_N64_BATCH_SLOT_CLAIM, *batch);
    for (size_t i = 0; i < count; ++i) {
        const Ipv6Prefix& subscriber = subscribers[first + i];
        const xlat_n64_batch_entry& e = batch->entries[i];
        switch (e.result) {
            case XLAT_N64_BATCH_DONE:
                out.push_back({Nat64Claim::Kind::claimed, e.block});
                continue;
            case XLAT_N64_BATCH_HAS_LEASE:
                out.push_back({Nat64Claim::Kind::has_lease});
                continue;
            case XLAT_N64_BATCH_RETRY:
                // Four stale or owned blocks in a row: the program gives up where this loop does
                // not.
                if (std::optional<uint32_t> block = claim_free_block(subscriber, block_count)) {
                    out.push_back({Nat64Claim::Kind::claimed, *block});
                    continue;
                }
                [[fallthrough]];
            case XLAT_N64_BATCH_POOL_EMPTY:
                out.push_back({Nat64Claim::Kind::pool_empty});
                return false;
            case XLAT_N64_BATCH_NOT_RUN:
                throw std::runtime_error("claiming a block for " + to_string(subscriber) +
                                         ": xlat64_n64_batch stopped before it");
            default:
                fail("claiming a block for " + to_string(subscriber), e.result);
        }
    }
    return true;
}

void Nat64Maps::add_leases(const std::vector<Nat64Owner>& leases, uint64_t allocated_ns,
                           Nat64LeaseProgress& progress) {
    if (has_batch_program()) {
        while (progress.done < leases.size()) {
            lease_batch(leases,
                        std::min<size_t>(XLAT64_N64_BATCH_MAX, leases.size() - progress.done),
                        allocated_ns, progress);
        }
        return;
    }
    for (; progress.done < leases.size(); ++progress.done) {
        const Nat64Owner& o = leases[progress.done];
        if (!add_lease(o.subscriber, o.block, allocated_ns)) {
            progress.superseded.push_back(progress.done);
        }
    }
}

void Nat64Maps::lease_batch(const std::vector<Nat64Owner>& leases, size_t count,
                            uint64_t allocated_ns, Nat64LeaseProgress& progress) {
    const size_t first = progress.done;
    auto batch = new_batch(XLAT_N64_BATCH_LEASE, count);
    batch->allocated_ns = allocated_ns;
    for (size_t i = 0; i < count; ++i) {
        const Nat64Owner& o = leases[first + i];
        const in6_addr key = subscriber_key(o.subscriber);
        std::memcpy(batch->entries[i].subscriber, &key, sizeof(key));
        batch->entries[i].block = o.block;
    }
    run_batch(fds_, XLAT_N64_BATCH_SLOT_LEASE, *batch);
    for (size_t i = 0; i < count; ++i, ++progress.done) {
        const xlat_n64_batch_entry& e = batch->entries[i];
        if (e.result == XLAT_N64_BATCH_HAS_LEASE) {
            progress.superseded.push_back(progress.done);
        } else if (e.result != XLAT_N64_BATCH_DONE) {
            const Nat64Owner& o = leases[progress.done];
            const std::string what =
                "leasing block " + std::to_string(o.block) + " to " + to_string(o.subscriber);
            if (e.result == XLAT_N64_BATCH_NOT_RUN) {
                throw std::runtime_error(what + ": xlat64_n64_batch stopped before it");
            }
            fail(what, e.result);
        }
    }
}

}  // namespace xlat64
