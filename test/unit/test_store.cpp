#include <sqlite3.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "daemon/store.h"
#include "test/unit/temp_dir.h"

using namespace xlat64;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

std::string contents(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// Changes a store behind xlat64's back, as another program (or a newer xlat64) would.
void raw_exec(const std::string& path, const char* sql) {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
    REQUIRE(sqlite3_exec(raw, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
}

Ipv6Prefix v6p(const char* text) {
    return *parse_ipv6_prefix(text);
}

Allocation allocation(uint64_t i, int64_t from) {
    Allocation a;
    Ipv6Address sub = *parse_ipv6_address("2001:db8::");
    sub[4] = static_cast<uint8_t>(i >> 16);
    sub[5] = static_cast<uint8_t>(i >> 8);
    sub[6] = static_cast<uint8_t>(i);
    a.subscriber = {sub, 56};
    a.account = "acct-" + std::to_string(i);
    a.block = i;
    a.internal = {{100, static_cast<uint8_t>(64 + (i >> 16)), static_cast<uint8_t>(i >> 8),
                   static_cast<uint8_t>(i)},
                  32};
    a.public_address = {192, 0, static_cast<uint8_t>(2 + i / 32 / 256),
                        static_cast<uint8_t>(i / 32)};
    a.first_port = static_cast<uint16_t>(1024 + (i % 32) * 2016);
    a.last_port = static_cast<uint16_t>(a.first_port + 2015);
    a.valid_from = from;
    return a;
}

StoreError::Kind open_error(const std::string& path, std::string& message) {
    try {
        Store::open(path);
    } catch (const StoreError& e) {
        message = e.what();
        return e.kind();
    }
    FAIL("opening " << path << " succeeded");
    return StoreError::Kind::other;
}

}  // namespace

TEST_CASE("the store persists across reopening, in WAL mode", "[store]") {
    TempDir dir;
    auto path = dir.file("state.db");
    {
        auto store = Store::open(path);
        CHECK(store.add_subscriber(v6p("2001:db8:1::/56"), "alice", 100));
        CHECK_FALSE(store.add_subscriber(v6p("2001:db8:1::/56"), "alice-2", 200));
        CHECK(store.add_subscriber(v6p("2001:db8:2::/56"), "bob", 150));
        store.open_allocation(allocation(7, 1000));
        CHECK(
            store.add_eam({*parse_ipv4_prefix("198.51.100.0/24"), v6p("2001:db8:64::/120")}, 300));
        store.set_meta("layout", "abc");
    }
    auto store = Store::open(path);
    auto alice = store.subscriber(v6p("2001:db8:1::/56"));
    REQUIRE(alice);
    CHECK(alice->account == "alice-2");
    CHECK(alice->created == 100);  // a change keeps the creation time
    CHECK(store.subscribers().size() == 2);
    REQUIRE(store.open_allocation_list().size() == 1);
    CHECK(store.open_allocation_list()[0] == [] {
        auto a = allocation(7, 1000);
        a.id = 1;
        return a;
    }());
    REQUIRE(store.eams().size() == 1);
    CHECK(store.eams()[0].created == 300);
    CHECK(store.meta("layout") == "abc");
    CHECK_FALSE(store.meta("other"));

    CHECK(store.remove_subscriber(v6p("2001:db8:2::/56")));
    CHECK_FALSE(store.remove_subscriber(v6p("2001:db8:2::/56")));
    CHECK(store.remove_eam(*parse_ipv4_prefix("198.51.100.0/24")));
    CHECK(store.eams().empty());

    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))) == "wal");
    sqlite3_finalize(stmt);
}

TEST_CASE("an EAM entry maps each prefix once", "[store]") {
    TempDir dir;
    auto store = Store::open(dir.file("state.db"));
    EamEntry e{*parse_ipv4_prefix("198.51.100.0/24"), v6p("2001:db8:64::/120")};
    CHECK(store.add_eam(e, 1));
    CHECK_FALSE(store.add_eam(e, 2));
    CHECK_FALSE(store.add_eam({*parse_ipv4_prefix("203.0.113.0/24"), e.ipv6}, 3));
    CHECK(store.eams().size() == 1);
}

TEST_CASE("the store refuses a block held twice and a subscriber holding two", "[store]") {
    TempDir dir;
    auto store = Store::open(dir.file("state.db"));
    auto first = allocation(5, 1000);
    store.open_allocation(first);

    auto thief = allocation(6, 1100);
    thief.block = 5;
    try {
        store.open_allocation(thief);
        FAIL("a second open allocation of block 5 was accepted");
    } catch (const StoreError& e) {
        CHECK(e.kind() == StoreError::Kind::conflict);
        CHECK_THAT(e.what(),
                   Catch::Contains("block 5 is already held by " + to_string(first.subscriber)));
    }
    auto greedy = allocation(5, 1100);
    greedy.block = 9;
    CHECK_THROWS_WITH(store.open_allocation(greedy), Catch::Contains("already holds block 5"));

    CHECK_FALSE(store.close_allocation(thief.subscriber, 5, 1200));  // not the holder
    CHECK(store.close_allocation(first.subscriber, 5, 1200));
    CHECK_FALSE(store.close_allocation(first.subscriber, 5, 1300));  // already closed
    CHECK(store.open_allocation(thief) > 0);
    CHECK(store.open_allocation_list().size() == 1);
    CHECK(store.history(first.subscriber).size() == 1);
    CHECK(store.history(first.subscriber)[0].valid_until == 1200);
}

TEST_CASE("a failed batch leaves nothing behind", "[store]") {
    TempDir dir;
    auto store = Store::open(dir.file("state.db"));
    std::vector<Allocation> batch{allocation(1, 10), allocation(2, 10), allocation(1, 10)};
    CHECK_THROWS_AS(store.open_allocations(batch), StoreError);
    CHECK(store.open_allocation_list().empty());

    // Calls inside an explicit transaction join it.
    {
        auto t = store.transaction();
        store.open_allocation(allocation(1, 10));
        store.add_subscriber(allocation(1, 10).subscriber, "x", 10);
        CHECK_THROWS(store.open_allocation(allocation(1, 10)));  // only this call is undone
        store.open_allocation(allocation(2, 10));
        t.commit();
    }
    CHECK(store.open_allocation_list().size() == 2);
    {
        auto t = store.transaction();
        store.open_allocation(allocation(3, 10));
    }  // not committed
    CHECK(store.open_allocation_list().size() == 2);
}

TEST_CASE("trace answers who held a port, now and in the past", "[store]") {
    TempDir dir;
    auto store = Store::open(dir.file("state.db"));
    auto old_holder = allocation(3, 1000);
    store.open_allocation(old_holder);
    store.close_allocation(old_holder.subscriber, 3, 2000);
    auto new_holder = allocation(4, 2000);
    new_holder.block = 3;
    new_holder.public_address = old_holder.public_address;
    new_holder.first_port = old_holder.first_port;
    new_holder.last_port = old_holder.last_port;
    store.open_allocation(new_holder);

    auto address = old_holder.public_address;
    auto first = old_holder.first_port, last = old_holder.last_port;
    auto who = [&](uint16_t port, int64_t at) -> std::optional<Ipv6Prefix> {
        auto a = store.trace(address, port, at);
        return a ? std::optional(a->subscriber) : std::nullopt;
    };
    CHECK(who(first, 999) == std::nullopt);            // before the first allocation
    CHECK(who(first, 1000) == old_holder.subscriber);  // valid_from inclusive
    CHECK(who(last, 1999) == old_holder.subscriber);
    CHECK(who(first, 2000) == new_holder.subscriber);      // valid_until exclusive
    CHECK(who(last, 1'000'000) == new_holder.subscriber);  // still open
    CHECK(who(first - 1, 1500) == std::nullopt);           // the block below is free
    CHECK(who(last + 1, 1500) == std::nullopt);
    CHECK(store.trace({192, 0, 2, 99}, first, 1500) == std::nullopt);

    auto found = store.trace(address, first + 5, 1500);
    REQUIRE(found);
    CHECK(found->account == old_holder.account);
    CHECK(found->internal == old_holder.internal);
    CHECK(found->valid_from == 1000);
    CHECK(found->valid_until == 2000);
}

TEST_CASE("prune removes only closed allocations older than the retention", "[store]") {
    TempDir dir;
    auto store = Store::open(dir.file("state.db"));
    for (uint64_t i = 0; i < 4; ++i) {
        store.open_allocation(allocation(i, 100));
    }
    store.close_allocation(allocation(0, 0).subscriber, 0, 200);  // old
    store.close_allocation(allocation(1, 0).subscriber, 1, 500);  // ends at the cut: kept
    store.close_allocation(allocation(2, 0).subscriber, 2, 900);  // recent
    CHECK(store.prune(500) == 1);
    CHECK(store.history(allocation(0, 0).subscriber).empty());
    CHECK(store.history(allocation(1, 0).subscriber).size() == 1);
    CHECK(store.history(allocation(2, 0).subscriber).size() == 1);
    CHECK(store.open_allocation_list().size() == 1);  // open: never pruned
    CHECK(store.prune(1'000'000) == 2);
    CHECK(store.open_allocation_list().size() == 1);
    CHECK(store.close_all_open(2000) == 1);
    CHECK(store.open_allocation_list().empty());
}

TEST_CASE("a store of a newer schema is refused and left untouched", "[store]") {
    TempDir dir;
    auto path = dir.file("state.db");
    {
        auto store = Store::open(path);
        store.open_allocation(allocation(1, 10));
    }
    raw_exec(path, "PRAGMA user_version=3");
    auto before = contents(path);
    std::string message;
    CHECK(open_error(path, message) == StoreError::Kind::newer_schema);
    CHECK(message == "opening the state store " + path +
                         ": it was written by a newer xlat64 (schema 3, this xlat64d knows up to "
                         "2): upgrade xlat64 or restore a backup");
    CHECK(contents(path) == before);

    // Also when the newer xlat64 left its WAL behind: no checkpoint into the file.
    raw_exec(path, "PRAGMA journal_mode=DELETE; PRAGMA user_version=4; PRAGMA journal_mode=WAL");
    before = contents(path);
    CHECK(open_error(path, message) == StoreError::Kind::newer_schema);
    CHECK(contents(path) == before);
}

TEST_CASE("a corrupt store is refused with a clear message and left untouched", "[store]") {
    TempDir dir;
    auto path = dir.file("state.db");
    std::string message;

    SECTION("garbage") {
        write_file(path, std::string(8192, 'x'));
        auto before = contents(path);
        CHECK(open_error(path, message) == StoreError::Kind::corrupt);
        CHECK(message == "opening the state store " + path +
                             ": file is not a database (the store is corrupt; move it aside to "
                             "start afresh or restore a backup)");
        CHECK(contents(path) == before);
    }
    SECTION("truncated") {
        {
            auto store = Store::open(path);
            std::vector<Allocation> batch;
            for (uint64_t i = 0; i < 5000; ++i) {
                batch.push_back(allocation(i, 10));
            }
            store.open_allocations(batch);
        }
        auto full = contents(path);
        write_file(path, full.substr(0, full.size() / 2));
        auto before = contents(path);
        CHECK(open_error(path, message) == StoreError::Kind::corrupt);
        CHECK_THAT(message, Catch::Contains("the store is corrupt"));
        CHECK(contents(path) == before);
    }
    SECTION("some other program's database") {
        raw_exec(path, "CREATE TABLE t (x)");
        auto before = contents(path);
        CHECK(open_error(path, message) == StoreError::Kind::corrupt);
        CHECK_THAT(message, Catch::Contains("not an xlat64 state store"));
        CHECK(contents(path) == before);
    }
}

TEST_CASE("a store that cannot be opened says why", "[store]") {
    TempDir dir;
    std::string message;
    auto missing = dir.file("no-such-dir") + "/state.db";
    CHECK(open_error(missing, message) == StoreError::Kind::cannot_open);
    CHECK(message == "opening the state store " + missing +
                         ": unable to open database file (the directory " +
                         dir.file("no-such-dir") + " does not exist)");
    CHECK_FALSE(fs::exists(dir.file("no-such-dir")));

    auto directory = dir.file("a-directory");
    fs::create_directory(directory);
    CHECK(open_error(directory, message) == StoreError::Kind::cannot_open);
    CHECK_THAT(message, Catch::EndsWith("(it is a directory)"));
}

TEST_CASE("what was committed survives a crash: the WAL is replayed", "[store]") {
    TempDir dir;
    auto path = dir.file("state.db");
    auto copy = dir.file("copy.db");
    auto store = Store::open(path);
    store.open_allocation(allocation(42, 10));
    // While the store is open the commit lives in the WAL: copying the files now is what a power
    // loss leaves behind.
    REQUIRE(fs::file_size(path + "-wal") > 0);
    fs::copy_file(path, copy);
    fs::copy_file(path + "-wal", copy + "-wal");
    auto recovered = Store::open(copy);
    REQUIRE(recovered.open_allocation_list().size() == 1);
    CHECK(recovered.open_allocation_list()[0].block == 42);
}

TEST_CASE("the integrity check can be skipped for a very large store", "[store]") {
    TempDir dir;
    auto path = dir.file("state.db");
    Store::open(path).set_meta("k", "v");
    CHECK(Store::open(path, {.check_integrity = false}).meta("k") == "v");
}

TEST_CASE("a full disk fails the write and keeps what was committed", "[store]") {
    TempDir dir;
    auto path = dir.file("state.db");
    auto store = Store::open(path);
    store.open_allocation(allocation(0, 10));
    store.set_size_limit(fs::file_size(path) + 4 * 4096);

    std::vector<Allocation> batch;
    for (uint64_t i = 1; i < 2000; ++i) {
        batch.push_back(allocation(i, 10));
    }
    try {
        store.open_allocations(batch);
        FAIL("a batch past the size limit was accepted");
    } catch (const StoreError& e) {
        CHECK(e.kind() == StoreError::Kind::full);
        CHECK_THAT(e.what(), Catch::StartsWith("writing the state store " + path +
                                               ": database or disk is full"));
    }
    REQUIRE(store.open_allocation_list().size() == 1);
    CHECK(store.open_allocation_list()[0].block == 0);
    store.set_size_limit(uint64_t{1} << 40);
    store.open_allocations(batch);  // usable again once there is room
    CHECK(store.open_allocation_list().size() == 2000);
}

TEST_CASE("a batch of 100000 allocations round-trips", "[store]") {
    TempDir dir;
    auto path = dir.file("state.db");
    std::vector<Allocation> batch;
    for (uint64_t i = 0; i < 100000; ++i) {
        batch.push_back(allocation(i, 1000 + static_cast<int64_t>(i)));
    }
    Store::open(path).open_allocations(batch);
    auto store = Store::open(path);
    auto restored = store.open_allocation_list();
    REQUIRE(restored.size() == batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
        restored[i].id = 0;
        if (restored[i] != batch[i]) {
            FAIL("allocation " << i << " came back different");
        }
    }
    auto found = store.trace(batch[54321].public_address, batch[54321].first_port + 7, 100000);
    REQUIRE(found);
    CHECK(found->subscriber == batch[54321].subscriber);
}

TEST_CASE("add_subscribers adds, updates and leaves alone, in one transaction", "[store]") {
    TempDir dir;
    Store store = Store::open(dir.file("state.db"));
    store.add_subscriber(v6p("2001:db8:1::/64"), "alice", 100);
    store.add_subscriber(v6p("2001:db8:2::/64"), "bob", 100);
    const std::vector<Subscriber> batch = {{v6p("2001:db8:1::/64"), "alice", 200},
                                           {v6p("2001:db8:2::/64"), "robert", 200},
                                           {v6p("2001:db8:3::/64"), "carol", 200}};
    using C = Store::SubscriberChange;
    CHECK(store.add_subscribers(batch) == std::vector<C>{C::unchanged, C::updated, C::added});
    // created is kept for the ones that were there.
    CHECK(store.subscriber(v6p("2001:db8:2::/64")) ==
          Subscriber{v6p("2001:db8:2::/64"), "robert", 100});
    CHECK(store.subscriber(v6p("2001:db8:3::/64")) ==
          Subscriber{v6p("2001:db8:3::/64"), "carol", 200});
    // Again: nothing changes.
    CHECK(store.add_subscribers(batch) == std::vector<C>{C::unchanged, C::unchanged, C::unchanged});
    CHECK(store.subscribers().size() == 3);
}

TEST_CASE("subscribers and their allocations commit together or not at all", "[store]") {
    TempDir dir;
    Store store = Store::open(dir.file("state.db"));
    store.open_allocation(allocation(7, 100));  // block 7 is held
    {
        auto t = store.transaction();
        store.add_subscribers({{v6p("2001:db8:9::/64"), "dave", 200}});
        Allocation clash = allocation(7, 200);
        clash.subscriber = v6p("2001:db8:9::/64");
        CHECK_THROWS_AS(store.open_allocations({allocation(8, 200), clash}), StoreError);
        // The caller's transaction is rolled back as a whole when it is not committed.
    }
    CHECK(store.subscribers().empty());
    REQUIRE(store.open_allocation_list().size() == 1);
    CHECK(store.open_allocation_list().front().block == 7);
}

TEST_CASE("batches of subscribers: new, renamed, unchanged and repeated, as one by one",
          "[store]") {
    TempDir dir;
    Store store = Store::open(dir.file("state.db"));
    auto prefix = [](size_t i) {
        Ipv6Address a = *parse_ipv6_address("2001:db8::");
        a[6] = static_cast<uint8_t>(i >> 8);
        a[7] = static_cast<uint8_t>(i);
        return Ipv6Prefix{a, 64};
    };
    using C = Store::SubscriberChange;
    // 300 subscribers: whole batches of 64 and a tail. Then again with every third renamed and
    // 100 new ones, and a batch holding one prefix twice.
    std::vector<Subscriber> first;
    for (size_t i = 0; i < 300; ++i) {
        first.push_back({prefix(i), "a" + std::to_string(i), 100});
    }
    CHECK(store.add_subscribers(first) == std::vector<C>(300, C::added));
    std::vector<Subscriber> second;
    std::vector<C> want;
    for (size_t i = 0; i < 400; ++i) {
        const bool renamed = i < 300 && i % 3 == 0;
        second.push_back({prefix(i), (renamed ? "b" : "a") + std::to_string(i), 200});
        want.push_back(i >= 300 ? C::added : renamed ? C::updated : C::unchanged);
    }
    second[70] = {prefix(350), "twice", 200};  // also at 350, in another batch
    want[70] = C::added;
    want[350] = C::updated;
    second[80] = {prefix(81), "x", 200};  // twice in one batch: the second one renames
    want[80] = C::updated;
    want[81] = C::updated;
    CHECK(store.add_subscribers(second) == want);
    CHECK(store.subscribers().size() == 400);
    CHECK(store.subscriber(prefix(3)) == Subscriber{prefix(3), "b3", 100});
    CHECK(store.subscriber(prefix(4)) == Subscriber{prefix(4), "a4", 100});
    CHECK(store.subscriber(prefix(81)) == Subscriber{prefix(81), "b81", 100});
    CHECK(store.subscriber(prefix(350)) == Subscriber{prefix(350), "a350", 200});
    CHECK(store.subscriber(prefix(399)) == Subscriber{prefix(399), "a399", 200});
}

TEST_CASE("a conflict inside a batch of allocations names it and leaves nothing", "[store]") {
    TempDir dir;
    Store store = Store::open(dir.file("state.db"));
    store.open_allocation(allocation(1000, 10));  // block 1000 is held
    std::vector<Allocation> batch;
    for (uint64_t i = 0; i < 200; ++i) {
        batch.push_back(allocation(i, 20));
    }
    batch[100].block = 1000;  // in the second batch of 64 rows
    try {
        store.open_allocations(batch);
        FAIL("block 1000 was given twice");
    } catch (const StoreError& e) {
        CHECK(e.kind() == StoreError::Kind::conflict);
        CHECK_THAT(e.what(), Catch::Contains("block 1000 is already held by " +
                                             to_string(allocation(1000, 10).subscriber)));
    }
    CHECK(store.open_allocation_list().size() == 1);
    batch[100].block = 100;
    store.open_allocations(batch);
    CHECK(store.open_allocation_list().size() == 201);
    CHECK(store.open_allocation_list()[150] == [&] {
        Allocation a = batch[150];
        a.id = store.open_allocation_list()[150].id;
        return a;
    }());
}

// The layout of schema 1 (xlat64 before the import work of issue 7), as its migration made it.
constexpr const char* kSchema1 = R"sql(
CREATE TABLE subscribers (prefix TEXT PRIMARY KEY, account TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE allocations (
    id INTEGER PRIMARY KEY, subscriber TEXT NOT NULL, account TEXT NOT NULL,
    block INTEGER NOT NULL CHECK (block >= 0), internal TEXT NOT NULL,
    public_address TEXT NOT NULL,
    first_port INTEGER NOT NULL CHECK (first_port BETWEEN 0 AND 65535),
    last_port INTEGER NOT NULL CHECK (last_port BETWEEN first_port AND 65535),
    valid_from INTEGER NOT NULL,
    valid_until INTEGER CHECK (valid_until IS NULL OR valid_until >= valid_from));
CREATE UNIQUE INDEX allocations_open_block ON allocations (block) WHERE valid_until IS NULL;
CREATE UNIQUE INDEX allocations_open_subscriber ON allocations (subscriber)
    WHERE valid_until IS NULL;
CREATE INDEX allocations_by_port ON allocations (public_address, first_port, last_port);
CREATE INDEX allocations_by_subscriber ON allocations (subscriber, valid_from);
CREATE INDEX allocations_closed ON allocations (valid_until) WHERE valid_until IS NOT NULL;
CREATE TABLE eam (ipv4 TEXT PRIMARY KEY, ipv6 TEXT NOT NULL UNIQUE, created INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO subscribers VALUES ('2001:db8:1::/64', 'alice', 50);
INSERT INTO allocations VALUES
    (1, '2001:db8:1::/64', 'alice', 3, '100.64.0.3/32', '192.0.2.1', 1024, 2047, 100, 200),
    (2, '2001:db8:1::/64', 'alice', 4, '100.64.0.4/32', '192.0.2.1', 2048, 3071, 300, NULL),
    (3, '2001:db8:2::/64', 'bob', 3, '100.64.0.3/32', '192.0.2.1', 1024, 2047, 250, NULL);
INSERT INTO meta VALUES ('k', 'v');
PRAGMA application_id = 2020357684;
PRAGMA user_version = 1;
)sql";

std::vector<std::string> index_names(const std::string& path) {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw,
                               "SELECT name FROM sqlite_schema WHERE type = 'index' AND "
                               "tbl_name = 'allocations' AND sql IS NOT NULL ORDER BY name",
                               -1, &stmt, nullptr) == SQLITE_OK);
    std::vector<std::string> out;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
    }
    sqlite3_finalize(stmt);
    return out;
}

TEST_CASE("a store of schema 1 is migrated and keeps everything", "[store]") {
    TempDir dir;
    auto path = dir.file("state.db");
    raw_exec(path, "PRAGMA journal_mode=WAL");
    raw_exec(path, kSchema1);
    {
        Store store = Store::open(path);
        CHECK(store.subscriber(v6p("2001:db8:1::/64")) ==
              Subscriber{v6p("2001:db8:1::/64"), "alice", 50});
        CHECK(store.meta("k") == "v");
        const auto history = store.history(v6p("2001:db8:1::/64"));
        REQUIRE(history.size() == 2);  // closed and open, oldest first
        CHECK(history[0].id == 1);
        CHECK(history[0].valid_until == 200);
        CHECK(history[1].id == 2);
        CHECK_FALSE(history[1].valid_until);
        const auto open = store.open_allocation_list();
        REQUIRE(open.size() == 2);
        CHECK(open[0].block == 3);
        CHECK(open[0].subscriber == v6p("2001:db8:2::/64"));
        auto traced = store.trace(*parse_ipv4_address("192.0.2.1"), 1500, 150);
        REQUIRE(traced);
        CHECK(traced->id == 1);
        // The unique indexes still hold.
        auto twice = open[0];
        twice.subscriber = v6p("2001:db8:3::/64");
        CHECK_THROWS_WITH(store.open_allocation(twice), Catch::Contains("block 3 is already held"));
    }
    CHECK(index_names(path) == std::vector<std::string>{"allocations_by_port", "allocations_closed",
                                                        "allocations_closed_by_subscriber",
                                                        "allocations_open_block",
                                                        "allocations_open_subscriber"});
    // Opening it again changes nothing.
    CHECK(Store::open(path).history(v6p("2001:db8:1::/64")).size() == 2);
}
