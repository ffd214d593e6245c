#include <sqlite3.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "daemon/store.h"

using namespace xlat64;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed with everything in it at the end.
class TempDir {
  public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "xlat64-store-XXXXXX").string();
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string file(const char* name) const { return (path_ / name).string(); }

  private:
    fs::path path_;
};

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
                         "1): upgrade xlat64 or restore a backup");
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
