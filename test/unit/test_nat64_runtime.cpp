// Nat64Runtime's import against real BPF maps of the daemon's types, made here with tiny
// max_entries (no program loaded): a full map fails a lease with E2BIG exactly as the kernel
// would at a million subscribers, without mocking bpf(). Needs root (skipped otherwise).
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include "daemon/bpf_translator.h"
#include "daemon/nat64_layout.h"
#include "daemon/nat64_ledger.h"
#include "daemon/nat64_maps.h"
#include "daemon/nat64_runtime.h"
#include "daemon/store.h"
#include "kmod-shim/xlat64_abi.h"
#include "netlink/nft_nat_table.h"
#include "netlink/unique_fd.h"
#include "test/unit/temp_dir.h"

using namespace xlat64;

namespace {

using test::TempDir;

// The NAT64 maps of xlat64.bpf.c, with the subscriber (lease) map holding only LEASES entries.
struct SmallMaps {
    explicit SmallMaps(uint32_t leases, uint32_t blocks = 1024)
        : prefixes(lpm()),
          subscribers(hash(sizeof(in6_addr), sizeof(xlat_n64_sub), leases)),
          owners(hash(sizeof(uint32_t), sizeof(in6_addr), blocks)),
          free_blocks(
              bpf_map_create(BPF_MAP_TYPE_QUEUE, "t_free", 0, sizeof(uint32_t), blocks, nullptr)),
          hosts6(hash(sizeof(in6_addr), sizeof(xlat_n64_host), 1024)),
          hosts4(hash(sizeof(uint32_t), sizeof(in6_addr), 1024)),
          events(bpf_map_create(BPF_MAP_TYPE_RINGBUF, "t_events", 0, 0, 4096, nullptr)) {}

    static int hash(uint32_t key, uint32_t value, uint32_t max) {
        LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
        return bpf_map_create(BPF_MAP_TYPE_HASH, "t_hash", key, value, max, &opts);
    }
    static int lpm() {
        LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
        return bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "t_pfx", sizeof(xlat_lpm6_key),
                              sizeof(xlat_n64_prefix), 16, &opts);
    }
    bool ok() const {
        for (const UniqueFd* fd :
             {&prefixes, &subscribers, &owners, &free_blocks, &hosts6, &hosts4, &events}) {
            if (fd->get() < 0) {
                return false;
            }
        }
        return true;
    }
    Nat64MapFds fds() const {
        return {prefixes.get(), subscribers.get(), owners.get(), free_blocks.get(),
                hosts6.get(),   hosts4.get(),      events.get()};
    }

    UniqueFd prefixes, subscribers, owners, free_blocks, hosts6, hosts4, events;
};

Nat64Config dynamic_config() {
    Nat64Config c;
    c.prefixes = {*parse_ipv6_prefix("2001:db8:100::/48")};
    c.subscriber_length = 64;
    c.internal_pool = *parse_ipv4_prefix("100.64.0.0/24");
    c.public_prefixes = {*parse_ipv4_prefix("198.51.100.0/30")};
    c.ports = {1024, 65535};
    c.mode = Nat64Mode::dynamic;
    return c;
}

std::string chunk_of(size_t count) {
    std::string text;
    for (size_t i = 1; i <= count; ++i) {
        text += "2001:db8:100:" + std::to_string(i) + "::/64 acct-" + std::to_string(i) + "\n";
    }
    return text;
}

// SmallMaps with room for LEASES leases; null (the test skipped) when BPF maps cannot be made.
std::unique_ptr<SmallMaps> small_maps(uint32_t leases) {
    auto maps = std::make_unique<SmallMaps>(leases);
    if (!maps->ok()) {
        WARN("skipped: cannot create BPF maps (not root?)");
        return nullptr;
    }
    return maps;
}

// Up to 65,280 subscribers 2001:db8:100:I::/64 (I in hex, below 0xff00).
std::string hex_chunk_of(size_t count) {
    std::string text;
    for (size_t i = 0; i < count; ++i) {
        char line[64];
        std::snprintf(line, sizeof(line), "2001:db8:100:%zx::/64 a%zu\n", i, i);
        text += line;
    }
    return text;
}

// 64,512 blocks of 256 ports, one internal address each.
Nat64Config large_dynamic_config() {
    Nat64Config c = dynamic_config();
    c.internal_pool = *parse_ipv4_prefix("100.64.0.0/16");
    c.public_prefixes = {*parse_ipv4_prefix("198.51.100.0/24")};
    c.block_size = 256;
    return c;
}

// The translator's own maps and programs, as in the daemon; null (the test skipped) when the
// program cannot be loaded.
std::unique_ptr<BpfTranslator> load_translator() {
    try {
        return std::make_unique<BpfTranslator>(BpfLoadOptions{});
    } catch (const std::exception& e) {
        WARN("skipped: cannot load the BPF program (not root?): " << e.what());
        return nullptr;
    }
}

// A dynamic-mode run-time over SMALL's maps, with a fresh store and every block free.
struct RuntimeLab {
    explicit RuntimeLab(const Nat64MapFds& fds, Nat64Config c = dynamic_config())
        : config(std::move(c)),
          store(Store::open(dir.file("state.db"))),
          ledger(store, config, StateConfig{}),
          maps(with_free_blocks(fds, config)),
          runtime(ledger, maps, nft, "xlat64") {}

    static Nat64Maps with_free_blocks(const Nat64MapFds& fds, const Nat64Config& config) {
        Nat64Maps maps(fds, config.subscriber_length);
        maps.push_free_blocks(nat64_free_order(config, 0, nat64_block_count(config)));
        return maps;
    }

    const Nat64Config config;
    TempDir dir;
    Store store;
    Nat64Ledger ledger;
    Nat64Maps maps;
    NftSocket nft;
    Nat64Runtime runtime;
};

size_t count_keys(int fd, size_t key_size) {
    std::vector<unsigned char> key(key_size), next(key_size);
    size_t n = 0;
    for (const void* prev = nullptr; bpf_map_get_next_key(fd, prev, next.data()) == 0; ++n) {
        key = next;
        prev = key.data();
    }
    return n;
}

// The calling thread in a network namespace of its own for the object's lifetime (namespaces are
// per thread), so that a test can build nftables tables without touching the machine's.
class PrivateNetns {
  public:
    PrivateNetns() : original_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
        entered_ = original_.get() >= 0 && unshare(CLONE_NEWNET) == 0;
    }
    ~PrivateNetns() {
        if (entered_) {
            setns(original_.get(), CLONE_NEWNET);
        }
    }
    PrivateNetns(const PrivateNetns&) = delete;
    PrivateNetns& operator=(const PrivateNetns&) = delete;
    bool entered() const { return entered_; }

  private:
    UniqueFd original_;
    bool entered_ = false;
};

}  // namespace

TEST_CASE("an import whose leases fail part-way returns every block it did not lease",
          "[nat64_runtime]") {
    constexpr uint32_t kLeaseRoom = 3;
    constexpr size_t kSubscribers = 8;
    const std::unique_ptr<SmallMaps> small = small_maps(kLeaseRoom);
    if (!small) {
        return;
    }
    RuntimeLab lab(small->fds());
    Store& store = lab.store;
    Nat64Maps& maps = lab.maps;
    Nat64Runtime& runtime = lab.runtime;
    const uint64_t blocks = nat64_block_count(lab.config);

    try {
        runtime.import_subscribers({chunk_of(kSubscribers)});
        FAIL("the import should have failed at lease " << kLeaseRoom + 1);
    } catch (const std::exception& e) {
        const std::string what = e.what();
        CHECK_THAT(what, Catch::Contains("after 3 of its 8 port blocks were leased"));
        CHECK_THAT(what, Catch::Contains("the other 5 were returned"));
    }

    // The chunk was committed: its subscribers stay, and exactly the leased blocks stay open.
    CHECK(store.subscribers().size() == kSubscribers);
    const std::vector<Allocation> open = store.open_allocation_list();
    REQUIRE(open.size() == kLeaseRoom);
    const std::vector<Nat64Lease> leases = maps.leases();
    REQUIRE(leases.size() == kLeaseRoom);
    std::set<std::pair<Ipv6Prefix, uint64_t>> leased, recorded;
    for (const Nat64Lease& l : leases) {
        leased.insert({l.subscriber, l.block});
    }
    for (const Allocation& a : open) {
        recorded.insert({a.subscriber, a.block});
    }
    CHECK(leased == recorded);
    // The other blocks are unclaimed and back in the free queue.
    CHECK(count_keys(small->owners.get(), sizeof(uint32_t)) == kLeaseRoom);
    size_t free = 0;
    while (maps.pop_free_block()) {
        ++free;
    }
    CHECK(free == blocks - kLeaseRoom);
    // Each returned block's allocation is closed (the history has all eight).
    size_t closed = 0;
    for (size_t i = 1; i <= kSubscribers; ++i) {
        for (const Allocation& a : store.history(
                 *parse_ipv6_prefix(("2001:db8:100:" + std::to_string(i) + "::/64").c_str()))) {
            closed += a.valid_until.has_value();
        }
    }
    CHECK(closed == kSubscribers - kLeaseRoom);
}

TEST_CASE("a pipelined chunk's failed leases refuse the next chunk, which imports nothing",
          "[nat64_runtime]") {
    const std::unique_ptr<SmallMaps> small = small_maps(3);
    if (!small) {
        return;
    }
    RuntimeLab lab(small->fds());
    Store& store = lab.store;
    Nat64Runtime& runtime = lab.runtime;

    Nat64Runtime::ImportRequest first{chunk_of(8)};
    first.pipelined = true;
    const nlohmann::json answer = runtime.import_subscribers(first);  // answered before leasing
    CHECK(answer.at("added") == 8);

    Nat64Runtime::ImportRequest second{"2001:db8:100:99::/64 late\n"};
    try {
        runtime.import_subscribers(second);
        FAIL("the chunk after failed leases should be refused");
    } catch (const std::exception& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("after 3 of its 8 port blocks"));
    }
    CHECK(store.subscribers().size() == 8);  // nothing of the second chunk
    CHECK(store.open_allocation_list().size() == 3);
    CHECK(count_keys(small->owners.get(), sizeof(uint32_t)) == 3);
}

// The kernel side of a chunk (here the translator's own maps and xlat64_n64_batch, as in the
// daemon) runs ahead of the SQLite side by at most ClaimStream::kBacklog claims, and then waits.
// When the transaction fails meanwhile (the store has one of the chunk's blocks open for someone
// else, so its INSERT OR ROLLBACK refuses the chunk), the waiting claimer must be released, stop,
// and every block it claimed go back to the free queue.
TEST_CASE("a chunk the store refuses part-way gives back every block its claimer ran ahead with",
          "[nat64_runtime]") {
    Nat64Config config = large_dynamic_config();
    const uint64_t blocks = nat64_block_count(config);
    constexpr size_t kSubscribers = 60000;  // below 0xff00
    // Well into the chunk: the claimer, the faster side, then mostly waits for room (with
    // cancel() not waking it, this test hangs in 4 runs of 5).
    constexpr size_t kConflictAt = 40000;
    REQUIRE(blocks > kSubscribers);
    const std::unique_ptr<BpfTranslator> translator = load_translator();
    if (!translator) {
        return;
    }
    const Nat64MapFds fds = translator->nat64_map_fds();
    REQUIRE(fds.batch_program >= 0);
    RuntimeLab lab(fds, config);
    const std::vector<uint32_t> order = nat64_free_order(config, 0, blocks);
    const Subscriber holder{*parse_ipv6_prefix("2001:db8:100:ff00::/64"), "holder",
                            1};  // not in the chunk
    lab.store.open_allocation(lab.ledger.imported(holder, order[kConflictAt], 1));

    const std::string chunk = hex_chunk_of(kSubscribers);
    CHECK_THROWS_WITH(lab.runtime.import_subscribers({chunk}),
                      Catch::Contains("2001:db8:100:ff00::/64"));  // the holder is named

    CHECK(lab.store.subscribers().empty());
    CHECK(lab.store.open_allocation_list().size() == 1);
    CHECK(count_keys(fds.owners, sizeof(uint32_t)) == 0);
    CHECK(count_keys(fds.subscribers, sizeof(in6_addr)) == 0);
    size_t free = 0;
    while (lab.maps.pop_free_block()) {
        ++free;
    }
    CHECK(free == blocks);
}

// Stale entries (blocks of a larger earlier layout) ahead of the free ones: a subscriber add pops
// past every one of them, however many, rather than reporting the pool leased.
TEST_CASE("a subscriber add finds a free block behind many stale queue entries",
          "[nat64_runtime]") {
    const std::unique_ptr<SmallMaps> small = small_maps(16);
    if (!small) {
        return;
    }
    const uint32_t blocks = static_cast<uint32_t>(nat64_block_count(dynamic_config()));
    for (uint32_t stale = blocks; stale < blocks + 12; ++stale) {
        REQUIRE(bpf_map_update_elem(small->free_blocks.get(), nullptr, &stale, BPF_ANY) == 0);
    }
    RuntimeLab lab(small->fds());  // queues every real block behind them

    const nlohmann::json added = lab.runtime.add_subscriber("2001:db8:100:1::/64", "acct-1");
    const uint32_t block = added.at("block");
    CHECK(block < blocks);
    const std::optional<Nat64Lease> lease =
        lab.maps.lease(*parse_ipv6_prefix("2001:db8:100:1::/64"));
    REQUIRE(lease);
    CHECK(lease->block == block);
}

// A reboot restores every lease with one lease time, so idle ones all turn idle in the same pass.
// Each pass returns at most 16384 of them, closed in the store in one commit before the kernel
// forgets them (a commit each held the event loop for minutes at 100,000 and the watchdog killed
// the daemon); the others follow in the next passes.
TEST_CASE("idle blocks found together are returned in passes of at most 16384", "[nat64_runtime]") {
    Nat64Config config = large_dynamic_config();
    config.idle_timeout_seconds = 1;
    const uint64_t blocks = nat64_block_count(config);
    constexpr size_t kPerPass = 16384;
    constexpr size_t kSubscribers = kPerPass + 3000;
    REQUIRE(blocks > kSubscribers);
    const std::unique_ptr<BpfTranslator> translator = load_translator();
    if (!translator) {
        return;
    }
    const Nat64MapFds fds = translator->nat64_map_fds();
    // tick() also reads the NAT64 table (exhaustion): the real one, in a namespace of the test's.
    PrivateNetns netns;
    REQUIRE(netns.entered());
    RuntimeLab lab(fds, config);
    NftNatTable(lab.nft, config.table, nat64_nft_shape(config, "xlat64")).ensure();
    const std::string chunk = hex_chunk_of(kSubscribers);
    lab.runtime.import_subscribers({chunk});
    REQUIRE(lab.store.open_allocation_list().size() == kSubscribers);

    // No host ever sent, and conntrack has nothing from the pool: every block is idle.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    lab.runtime.tick();
    CHECK(lab.store.open_allocation_list().size() == kSubscribers - kPerPass);
    CHECK(count_keys(fds.subscribers, sizeof(in6_addr)) == kSubscribers - kPerPass);

    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    lab.runtime.tick();  // the rest; the first pass's blocks go back to the free queue
    CHECK(lab.store.open_allocation_list().empty());
    CHECK(count_keys(fds.subscribers, sizeof(in6_addr)) == 0);
    lab.runtime.tick();  // the second pass's blocks go back too
    CHECK(count_keys(fds.owners, sizeof(uint32_t)) == 0);
    size_t free = 0;
    while (lab.maps.pop_free_block()) {
        ++free;
    }
    CHECK(free == blocks);
    // Each closed allocation is in the history, held since the import.
    const auto history = lab.store.history(*parse_ipv6_prefix("2001:db8:100:0::/64"));
    REQUIRE(history.size() == 1);
    CHECK(history[0].valid_until.has_value());
}

// The data path's allocations reach the daemon as ring-buffer events. A burst of them (first
// packets of subscribers moving over from a failed BRAS) is recorded once the ring is read, in one
// commit, not an fsync per event on the event loop; a replayed event is refused as recorded
// already, without losing the others of its batch.
TEST_CASE("the data path's allocations are recorded together once the events are read",
          "[nat64_runtime]") {
    const std::unique_ptr<SmallMaps> small = small_maps(16);
    if (!small) {
        return;
    }
    RuntimeLab lab(small->fds());
    constexpr uint32_t kEvents = 100;
    REQUIRE(nat64_block_count(lab.config) >= kEvents);
    auto event = [](uint32_t i) {
        xlat_event e{};
        e.type = XLAT_EVENT_BLOCK_ALLOCATED;
        e.block = i;
        const Ipv6Prefix who =
            *parse_ipv6_prefix(("2001:db8:100:" + std::to_string(i + 1) + "::/64").c_str());
        std::memcpy(e.subscriber, who.addr.data(), sizeof(e.subscriber));
        timespec now{};
        clock_gettime(CLOCK_MONOTONIC, &now);
        e.time_ns = static_cast<uint64_t>(now.tv_sec) * 1000000000ULL + now.tv_nsec;
        return e;
    };
    for (uint32_t i = 0; i < kEvents; ++i) {
        const xlat_event e = event(i);
        lab.runtime.on_event(&e, sizeof(e));
    }
    CHECK(lab.store.open_allocation_list().empty());  // nothing yet: one commit for the burst
    lab.runtime.drain_events();
    CHECK(lab.store.open_allocation_list().size() == kEvents);

    // Event 7 again, between two new ones: refused as recorded, the others recorded.
    for (uint32_t i : {kEvents, 7u, kEvents + 1}) {
        const xlat_event e = event(i);
        lab.runtime.on_event(&e, sizeof(e));
    }
    lab.runtime.drain_events();
    const std::vector<Allocation> open = lab.store.open_allocation_list();
    CHECK(open.size() == kEvents + 2);
    const auto seven = lab.store.history(*parse_ipv6_prefix("2001:db8:100:8::/64"));
    CHECK(seven.size() == 1);
}

// Allocations whose blocks mean something else after a configuration change (here a subscriber
// the admitted prefixes no longer hold) are closed at start-up, all in one commit, and logged;
// the others stay open.
TEST_CASE("allocations a changed configuration no longer maps are closed together",
          "[nat64_runtime]") {
    const std::unique_ptr<SmallMaps> small = small_maps(16);
    if (!small) {
        return;
    }
    RuntimeLab lab(small->fds());
    const Ipv6Prefix kept1 = *parse_ipv6_prefix("2001:db8:100:1::/64");
    const Ipv6Prefix kept2 = *parse_ipv6_prefix("2001:db8:100:2::/64");
    const Ipv6Prefix gone1 = *parse_ipv6_prefix("2001:db8:999:1::/64");
    const Ipv6Prefix gone2 = *parse_ipv6_prefix("2001:db8:999:2::/64");
    uint32_t block = 0;
    for (const Ipv6Prefix& p : {kept1, gone1, kept2, gone2}) {
        lab.store.open_allocation(lab.ledger.imported({p, "acct", 1}, block++, 1));
    }
    REQUIRE(lab.store.open_allocation_list().size() == 4);

    lab.runtime.sync_with_store(lab.store.open_allocation_list(), 1);

    std::set<Ipv6Prefix> open;
    for (const Allocation& a : lab.store.open_allocation_list()) {
        open.insert(a.subscriber);
    }
    CHECK(open == std::set<Ipv6Prefix>{kept1, kept2});
    for (const Ipv6Prefix& p : {gone1, gone2}) {
        const auto history = lab.store.history(p);
        REQUIRE(history.size() == 1);
        CHECK(history[0].valid_until.has_value());
    }
}
