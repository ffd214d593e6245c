// The persistent state store (DESIGN.md "state/"): one SQLite database in WAL mode in the state
// directory (default /var/lib/xlat64/state.db) holding the subscribers, every port block allocation
// with its interval of validity (present and past, for tracing), the runtime changes made with
// xlat64ctl (EAMT entries, subscribers) and small settings (meta).
//
// Contract with the daemon:
// - An allocation is committed (and fsynced: synchronous=FULL) before the kernel is programmed with
//   it, so a crash or a power loss can never hand one block out twice or lose who held it.
// - The database itself refuses a second OPEN allocation of one block or for one subscriber
//   (partial UNIQUE indexes), whatever the daemon's in-memory state says.
// - Every failure is a StoreError whose message names the file, what was being done and what the
//   operator can do about it. A store that is corrupt, of a newer schema or not an xlat64 store is
//   refused before anything is written to it.
//
// Not thread-safe: one Store per thread (the daemon's event loop owns it). Its WAL checkpoints run
// on a connection and thread of their own, so that a commit does not wait for them (store.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/ip_address.h"

struct sqlite3;
struct sqlite3_stmt;

namespace xlat64 {

class StoreError : public std::runtime_error {
  public:
    enum class Kind {
        cannot_open,   // missing directory, permissions, read-only file
        corrupt,       // not a database, malformed, or not an xlat64 store
        newer_schema,  // written by a newer xlat64
        full,          // disk (or the configured size limit) full
        conflict,      // a block or subscriber already has an open allocation
        other,
    };
    StoreError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    Kind kind() const { return kind_; }

  private:
    Kind kind_;
};

struct Subscriber {
    Ipv6Prefix prefix;
    std::string account;  // the operator's account id ("" when provisioned without one)
    int64_t created = 0;  // Unix seconds
    bool operator==(const Subscriber&) const = default;
};

// One port block held by one subscriber during [valid_from, valid_until); valid_until empty while
// the allocation is still open.
struct Allocation {
    int64_t id = 0;  // assigned by the store
    Ipv6Prefix subscriber;
    std::string account;  // copied when allocated, so history keeps it after the subscriber goes
    uint64_t block = 0;   // block index (port_blocks.h) under the configuration of the time
    Ipv4Prefix internal;  // the subscriber's internal IPv4 block
    Ipv4Address public_address{};
    uint16_t first_port = 0;
    uint16_t last_port = 0;
    int64_t valid_from = 0;
    std::optional<int64_t> valid_until;
    bool operator==(const Allocation&) const = default;
};

struct StoredEam {
    EamEntry entry;
    int64_t created = 0;
    bool operator==(const StoredEam&) const = default;
};

namespace store_detail {
struct DbClose {
    void operator()(sqlite3* db) const;
};
struct StmtFinalize {
    void operator()(sqlite3_stmt* stmt) const;
};
class Query;         // a cached prepared statement in use (store.cpp)
class Checkpointer;  // the WAL checkpoint on a second connection and thread (store.cpp)
}  // namespace store_detail

class Store {
  public:
    static constexpr int kSchemaVersion = 2;
    static constexpr const char* kDefaultPath = "/var/lib/xlat64/state.db";

    struct Options {
        // PRAGMA quick_check before anything is written: reads the whole file (about 0.5 s for
        // a million allocations), so a damaged store is refused up front instead of failing at
        // the first unlucky page.
        bool check_integrity = true;
    };

    // Opens (creating if absent) the store at PATH and brings its schema up to kSchemaVersion. The
    // directory must exist (systemd's StateDirectory= creates it).
    static Store open(const std::string& path, Options options);
    static Store open(const std::string& path) { return open(path, Options{}); }

    Store(Store&&) noexcept;
    Store& operator=(Store&&) noexcept;
    ~Store();

    const std::string& path() const { return path_; }

    // A write transaction (BEGIN IMMEDIATE) grouping several calls into one commit and one fsync;
    // every write method joins it (as a savepoint) when one is open. Rolled back on destruction
    // unless committed. Must not outlive the Store (nor see it moved).
    class Transaction {
      public:
        Transaction(Transaction&&) noexcept;
        Transaction& operator=(Transaction&&) = delete;
        ~Transaction();
        void commit();

      private:
        friend class Store;
        explicit Transaction(Store& store);
        Store* store_;
        bool nested_;
        bool done_ = false;
    };
    Transaction transaction() { return Transaction(*this); }

    // --- subscribers ---
    // Adds PREFIX, or changes its account; true when it was new. `created` is kept on a change.
    bool add_subscriber(const Ipv6Prefix& prefix, const std::string& account, int64_t now);
    // add_subscriber for many (their `created` is used for the new ones), in one transaction
    // (or the open one): nothing is written for a subscriber already there with that account.
    enum class SubscriberChange : uint8_t { added, updated, unchanged };
    std::vector<SubscriberChange> add_subscribers(const std::vector<Subscriber>& subscribers);
    // The same inside the caller's transaction T without a savepoint of its own (a savepoint
    // copies every page it changes first): on an error the caller rolls T back whole.
    std::vector<SubscriberChange> add_subscribers(const Transaction& t,
                                                  const std::vector<Subscriber>& subscribers);
    bool remove_subscriber(const Ipv6Prefix& prefix);
    std::optional<Subscriber> subscriber(const Ipv6Prefix& prefix);
    std::vector<Subscriber> subscribers();

    // --- allocations ---
    // Records an open allocation (valid_until must be empty) and returns its id. Throws StoreError
    // (Kind::conflict) when its block or its subscriber already has an open allocation.
    int64_t open_allocation(const Allocation& allocation);
    // The same for many, in one transaction: all or none.
    void open_allocations(const std::vector<Allocation>& allocations);
    // The same inside the caller's transaction T, without a savepoint (see add_subscribers).
    void open_allocations(const Transaction& t, const std::vector<Allocation>& allocations);
    // Closes SUBSCRIBER's open allocation of BLOCK at UNTIL; false when there is none.
    bool close_allocation(const Ipv6Prefix& subscriber, uint64_t block, int64_t until);
    // Closes every open allocation (a configuration reset); returns how many.
    uint64_t close_all_open(int64_t until);
    // Every open allocation, ordered by block: what the daemon re-creates after a reboot.
    std::vector<Allocation> open_allocation_list();
    // Who held public ADDRESS:PORT at time AT: the allocation whose block holds the port and with
    // valid_from <= AT < valid_until (open allocations have no end).
    std::optional<Allocation> trace(const Ipv4Address& address, uint16_t port, int64_t at);
    // SUBSCRIBER's allocations, oldest first.
    std::vector<Allocation> history(const Ipv6Prefix& subscriber);
    // Removes the closed allocations that ended before OLDER_THAN (the retention); returns how
    // many. Open allocations are never pruned.
    uint64_t prune(int64_t older_than);

    // --- explicit address mappings added at runtime ---
    // false when either prefix is already mapped (to anything). Overlap checks are the caller's.
    bool add_eam(const EamEntry& entry, int64_t now);
    bool remove_eam(const Ipv4Prefix& ipv4);
    std::vector<StoredEam> eams();

    // --- small settings (e.g. the NAT64 layout the allocations were made under) ---
    std::optional<std::string> meta(const std::string& key);
    void set_meta(const std::string& key, const std::string& value);

    // Caps the database at BYTES (rounded down to pages): writes past it fail like a full disk.
    void set_size_limit(uint64_t bytes);

  private:
    friend class store_detail::Query;
    using Query = store_detail::Query;
    using DbPtr = std::unique_ptr<sqlite3, store_detail::DbClose>;
    using StmtPtr = std::unique_ptr<sqlite3_stmt, store_detail::StmtFinalize>;

    Store(std::string path, DbPtr db);

    void check_before_writing(bool check_integrity);
    void configure();
    void migrate();
    void exec(const char* sql, const char* doing);
    Query query(std::string_view sql, const char* doing);
    static constexpr size_t kRowsPerInsert = 64;
    SubscriberChange add_subscriber_row(const Subscriber& subscriber, const std::string& prefix);
    // ROLLBACK_ON_ERROR: a failed statement rolls the whole (outermost) transaction back rather
    // than itself, so it needs no statement journal (a copy of every page it changes).
    void add_subscriber_rows(const Subscriber* rows, SubscriberChange* changes,
                             bool rollback_on_error);  // kRowsPerInsert of them
    static bool may_roll_back_whole(const Transaction& t) { return !t.nested_; }
    void check_open(const Allocation& allocation) const;
    static void bind_allocation(Query& q, int row, const Allocation& allocation);
    void insert_allocation(const Allocation& allocation);
    void insert_allocations(const Allocation* rows, bool rollback_on_error);  // kRowsPerInsert
    std::optional<std::string> held_by(const Allocation& allocation);
    [[noreturn]] void conflict(const Allocation& allocation);
    [[noreturn]] void conflict_in(const Allocation* rows, size_t count);
    [[noreturn]] void fail(int rc, const std::string& doing) const;

    void start_checkpointer();

    std::string path_;
    DbPtr db_;
    std::map<std::string, StmtPtr, std::less<>> statements_;  // cached by their SQL
    // After db_: stopped (and its connection closed) first, so that closing db_ still checkpoints
    // and removes the WAL as the last connection.
    std::unique_ptr<store_detail::Checkpointer> checkpointer_;
};

}  // namespace xlat64
