#include "daemon/store.h"

#include <sqlite3.h>

#include <array>
#include <condition_variable>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

namespace xlat64 {

namespace {

// PRAGMA application_id ("xl64"): tells an xlat64 store from any other SQLite file.
constexpr int32_t kApplicationId = 0x786c3634;

// Migration N takes schema N-1 to N. Append only: a released migration never changes, since stores
// in the field already ran it.
struct Migration {
    int to;
    const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE subscribers (
    prefix TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE allocations (
    id INTEGER PRIMARY KEY,
    subscriber TEXT NOT NULL,
    account TEXT NOT NULL,
    block INTEGER NOT NULL CHECK (block >= 0),
    internal TEXT NOT NULL,
    public_address TEXT NOT NULL,
    first_port INTEGER NOT NULL CHECK (first_port BETWEEN 0 AND 65535),
    last_port INTEGER NOT NULL CHECK (last_port BETWEEN first_port AND 65535),
    valid_from INTEGER NOT NULL,
    valid_until INTEGER CHECK (valid_until IS NULL OR valid_until >= valid_from)
);
-- The database itself refuses a block held twice or a subscriber holding two blocks.
CREATE UNIQUE INDEX allocations_open_block ON allocations (block) WHERE valid_until IS NULL;
CREATE UNIQUE INDEX allocations_open_subscriber ON allocations (subscriber)
    WHERE valid_until IS NULL;
-- trace ADDRESS:PORT; last_port is in the index so only matching rows are fetched.
CREATE INDEX allocations_by_port ON allocations (public_address, first_port, last_port);
CREATE INDEX allocations_by_subscriber ON allocations (subscriber, valid_from);
-- prune: partial, so opening an allocation does not pay for it.
CREATE INDEX allocations_closed ON allocations (valid_until) WHERE valid_until IS NOT NULL;
CREATE TABLE eam (
    ipv4 TEXT PRIMARY KEY,
    ipv6 TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
)sql"},
    // Opening an allocation wrote four index entries, two of them keyed by the subscriber's text
    // (a bulk import opens a million). The open allocations already have
    // allocations_open_subscriber, so the history index only needs the closed ones, which are
    // written one at a time as blocks are returned; history() reads both.
    {2, R"sql(
DROP INDEX allocations_by_subscriber;
CREATE INDEX allocations_closed_by_subscriber ON allocations (subscriber, valid_from)
    WHERE valid_until IS NOT NULL;
)sql"},
};
static_assert(std::size(kMigrations) == Store::kSchemaVersion);

constexpr const char* kCorruptHint =
    " (the store is corrupt; move it aside to start afresh or restore a backup)";

std::string parent_directory(const std::string& path) {
    auto parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? "." : parent.string();
}

// What the operator can do about an error, by its SQLite result code.
std::string hint(int rc, const std::string& path) {
    switch (rc & 0xff) {
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            return kCorruptHint;
        case SQLITE_FULL:
            return " (free space in " + parent_directory(path) + ")";
        case SQLITE_CANTOPEN: {
            std::error_code ec;
            auto dir = parent_directory(path);
            if (!std::filesystem::is_directory(dir, ec)) {
                return " (the directory " + dir + " does not exist)";
            }
            if (std::filesystem::is_directory(path, ec)) {
                return " (it is a directory)";
            }
            return " (is the directory writable by xlat64d?)";
        }
        case SQLITE_READONLY:
            // WAL mode creates PATH-wal and PATH-shm beside the file, hence the directory.
            return " (are the file and its directory writable by xlat64d?)";
        case SQLITE_BUSY:
            return " (another process holds the store: is a second xlat64d running?)";
        default:
            return "";
    }
}

StoreError::Kind kind_of(int rc) {
    switch (rc & 0xff) {
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            return StoreError::Kind::corrupt;
        case SQLITE_FULL:
            return StoreError::Kind::full;
        case SQLITE_CANTOPEN:
        case SQLITE_READONLY:
        case SQLITE_PERM:
            return StoreError::Kind::cannot_open;
        case SQLITE_CONSTRAINT:
            return StoreError::Kind::conflict;
        default:
            return StoreError::Kind::other;
    }
}

void set_checkpoint_on_close(sqlite3* db, bool on) {
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, on ? 0 : 1, nullptr);
}

}  // namespace

void store_detail::DbClose::operator()(sqlite3* db) const {
    sqlite3_close_v2(db);
}

// SQLite's automatic checkpoint copies the WAL into the database inside the commit that filled
// it, fsync included: a bulk import waited for that after every chunk. Here a second connection
// does it on its own thread while the writer goes on. Durability does not change: a commit is
// durable once its WAL frames are synced (synchronous=FULL), and a checkpoint only moves them
// into the main file. A WAL that grows past kInlineFrames anyway (the thread cannot keep up) is
// checkpointed in the commit again, as SQLite would, so it stays bounded.
class store_detail::Checkpointer {
  public:
    static constexpr int kFrames = 1000;  // SQLite's default wal_autocheckpoint
    static constexpr int kInlineFrames = 32 * kFrames;

    using DbPtr = std::unique_ptr<sqlite3, DbClose>;
    explicit Checkpointer(DbPtr db) : db_(std::move(db)), thread_([this] { run(); }) {}
    ~Checkpointer() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }
    Checkpointer(const Checkpointer&) = delete;
    Checkpointer& operator=(const Checkpointer&) = delete;

    // sqlite3_wal_hook: after each commit, with the number of frames in the WAL.
    static int on_commit(void* self, sqlite3* writer, const char* schema, int frames) {
        if (frames >= kInlineFrames) {
            sqlite3_wal_checkpoint_v2(writer, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        } else if (frames >= kFrames) {
            static_cast<Checkpointer*>(self)->request();
        }
        return SQLITE_OK;
    }

  private:
    void request() {
        {
            std::lock_guard lock(mutex_);
            wanted_ = true;
        }
        wake_.notify_one();
    }
    // A failed checkpoint (busy, I/O) leaves the frames in the WAL, where they are read from;
    // the next commit asks again.
    void run() {
        std::unique_lock lock(mutex_);
        while (true) {
            wake_.wait(lock, [&] { return wanted_ || stop_; });
            if (stop_) {
                return;
            }
            wanted_ = false;
            lock.unlock();
            sqlite3_wal_checkpoint_v2(db_.get(), "main", SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                      nullptr);
            lock.lock();
        }
    }

    DbPtr db_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool wanted_ = false;
    bool stop_ = false;
    std::thread thread_;  // last: runs on the members above
};

void store_detail::StmtFinalize::operator()(sqlite3_stmt* stmt) const {
    sqlite3_finalize(stmt);
}

// A cached prepared statement in use: bindings in, rows out; reset when it goes out of scope so
// the next user finds it clean (and so a read does not hold the WAL snapshot open).
class store_detail::Query {
  public:
    Query(const Store& store, sqlite3_stmt* stmt, const char* doing)
        : store_(store), stmt_(stmt), doing_(doing) {}
    Query(const Query&) = delete;
    Query& operator=(const Query&) = delete;
    ~Query() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }

    Query& bind(int index, int64_t value) {
        check(sqlite3_bind_int64(stmt_, index, value));
        return *this;
    }
    Query& bind(int index, const std::string& value) {
        check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                                SQLITE_TRANSIENT));
        return *this;
    }
    Query& bind(int index, const std::optional<int64_t>& value) {
        check(value ? sqlite3_bind_int64(stmt_, index, *value) : sqlite3_bind_null(stmt_, index));
        return *this;
    }

    // true with a row to read, false when done.
    bool step() {
        int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) {
            return true;
        }
        if (rc != SQLITE_DONE) {
            store_.fail(rc, doing_);
        }
        return false;
    }
    // sqlite3_step's result code, for a caller that handles some failures itself.
    int step_code() { return sqlite3_step(stmt_); }
    // Runs a statement that returns no rows; the rows it changed.
    uint64_t run() {
        step();
        return static_cast<uint64_t>(sqlite3_changes64(sqlite3_db_handle(stmt_)));
    }

    int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
    bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
    std::string text(int column) const { return std::string(view(column)); }
    // Valid until the next step: parsing a million rows must not copy each column first.
    std::string_view view(int column) const {
        auto data = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
        return data ? std::string_view(data,
                                       static_cast<size_t>(sqlite3_column_bytes(stmt_, column)))
                    : std::string_view();
    }

    // A row whose contents do not parse: the file was changed behind xlat64's back.
    [[noreturn]] void corrupt_row(const std::string& what) const {
        throw StoreError(StoreError::Kind::corrupt, std::string(doing_) + " the state store " +
                                                        store_.path_ + ": " + what + kCorruptHint);
    }

  private:
    void check(int rc) {
        if (rc != SQLITE_OK) {
            store_.fail(rc, doing_);
        }
    }

    const Store& store_;
    sqlite3_stmt* stmt_;
    const char* doing_;
};

namespace {

// A column holding an address or prefix as text; a value that does not parse is a corrupt row.
template <typename Parse>
auto parsed_column(const store_detail::Query& q, int column, Parse parse, const char* what) {
    const std::string_view text = q.view(column);
    auto value = parse(text);
    if (!value) {
        q.corrupt_row(std::string("invalid ") + what + " '" + std::string(text) + "'");
    }
    return *value;
}

Ipv6Prefix v6_column(const store_detail::Query& q, int column) {
    return parsed_column(q, column, parse_ipv6_prefix, "IPv6 prefix");
}

Ipv4Prefix v4_prefix_column(const store_detail::Query& q, int column) {
    return parsed_column(q, column, parse_ipv4_prefix, "IPv4 prefix");
}

Ipv4Address v4_column(const store_detail::Query& q, int column) {
    return parsed_column(q, column, parse_ipv4_address, "IPv4 address");
}

constexpr const char* kAllocationColumns =
    "id, subscriber, account, block, internal, public_address, first_port, last_port, "
    "valid_from, valid_until";

Allocation allocation_row(const store_detail::Query& q) {
    Allocation a;
    a.id = q.integer(0);
    a.subscriber = v6_column(q, 1);
    a.account = q.text(2);
    a.block = static_cast<uint64_t>(q.integer(3));
    a.internal = v4_prefix_column(q, 4);
    a.public_address = v4_column(q, 5);
    a.first_port = static_cast<uint16_t>(q.integer(6));
    a.last_port = static_cast<uint16_t>(q.integer(7));
    a.valid_from = q.integer(8);
    if (!q.is_null(9)) {
        a.valid_until = q.integer(9);
    }
    return a;
}

std::string select_allocations(const char* rest) {
    return std::string("SELECT ") + kAllocationColumns + " FROM allocations " + rest;
}

}  // namespace

// --- opening ---

Store Store::open(const std::string& path, Options options) {
    // SQLite's memory statistics take a global mutex on every allocation; nothing reads them. Only
    // settable before SQLite's first use (later calls fail harmlessly).
    static const int memstatus_off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    (void)memstatus_off;
    sqlite3* raw = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    DbPtr db(raw);  // closes it even when opening failed
    if (rc != SQLITE_OK) {
        std::string message = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
        throw StoreError(kind_of(rc),
                         "opening the state store " + path + ": " + message + hint(rc, path));
    }
    sqlite3_extended_result_codes(raw, 1);
    // Until the file is known to be a healthy store of a schema we know, closing must not write
    // to it (a checkpoint of a WAL left by someone else would).
    set_checkpoint_on_close(raw, false);
    Store store(path, std::move(db));
    store.check_before_writing(options.check_integrity);
    set_checkpoint_on_close(store.db_.get(), true);
    store.configure();
    store.migrate();
    store.start_checkpointer();
    return store;
}

// Without a second connection (it cannot be opened) SQLite's own automatic checkpoint stays.
void Store::start_checkpointer() {
    sqlite3* raw = nullptr;
    int rc =
        sqlite3_open_v2(path_.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    DbPtr db(raw);
    // A read opens the connection's WAL: until then its checkpoints do nothing, successfully.
    if (rc != SQLITE_OK || sqlite3_exec(raw, "SELECT count(*) FROM sqlite_master", nullptr, nullptr,
                                        nullptr) != SQLITE_OK) {
        return;
    }
    set_checkpoint_on_close(raw, false);  // the writer's connection does that, last
    checkpointer_ = std::make_unique<store_detail::Checkpointer>(std::move(db));
    sqlite3_wal_hook(db_.get(), &store_detail::Checkpointer::on_commit, checkpointer_.get());
}

Store::Store(std::string path, DbPtr db) : path_(std::move(path)), db_(std::move(db)) {}
Store::Store(Store&&) noexcept = default;
// By hand: the checkpointer's connection must close before the writer's (see ~Store).
Store& Store::operator=(Store&& other) noexcept {
    if (this != &other) {
        checkpointer_.reset();
        statements_.clear();
        db_ = std::move(other.db_);
        path_ = std::move(other.path_);
        statements_ = std::move(other.statements_);
        checkpointer_ = std::move(other.checkpointer_);
    }
    return *this;
}
Store::~Store() {
    checkpointer_.reset();  // its connection closed first: db_'s close then removes the WAL
    statements_.clear();    // finalized before the connection closes
}

// Reads only: the refusals (not a store, newer schema, corrupt) must leave the file as it was.
void Store::check_before_writing(bool check_integrity) {
    const char* doing = "opening";
    if (sqlite3_db_readonly(db_.get(), "main") == 1) {
        fail(SQLITE_READONLY, doing);
    }
    sqlite3_busy_timeout(db_.get(), 5000);
    int64_t application_id = 0, version = 0, objects = 0;
    {
        auto q = query("PRAGMA application_id", doing);
        application_id = q.step() ? q.integer(0) : 0;
    }
    {
        auto q = query("PRAGMA user_version", doing);
        version = q.step() ? q.integer(0) : 0;
    }
    {
        auto q = query("SELECT count(*) FROM sqlite_schema", doing);
        objects = q.step() ? q.integer(0) : 0;
    }
    bool foreign =
        application_id != 0 ? application_id != kApplicationId : version != 0 || objects != 0;
    if (foreign) {
        throw StoreError(StoreError::Kind::corrupt,
                         "opening the state store " + path_ +
                             ": it is an SQLite database of some other program, not an xlat64 "
                             "state store (move it aside or point xlat64d at another path)");
    }
    if (version > kSchemaVersion) {
        throw StoreError(
            StoreError::Kind::newer_schema,
            "opening the state store " + path_ + ": it was written by a newer xlat64 (schema " +
                std::to_string(version) + ", this xlat64d knows up to " +
                std::to_string(kSchemaVersion) + "): upgrade xlat64 or restore a backup");
    }
    if (!check_integrity) {
        return;
    }
    auto q = query("PRAGMA quick_check", doing);
    if (q.step() && q.text(0) != "ok") {
        throw StoreError(StoreError::Kind::corrupt,
                         "opening the state store " + path_ + ": " + q.text(0) + kCorruptHint);
    }
}

void Store::configure() {
    {
        auto q = query("PRAGMA journal_mode=WAL", "opening");
        if (!q.step() || q.text(0) != "wal") {
            throw StoreError(StoreError::Kind::other,
                             "opening the state store " + path_ +
                                 ": cannot switch it to WAL mode (journal mode '" + q.text(0) +
                                 "'; is " + parent_directory(path_) + " on a local file system?)");
        }
    }
    // FULL fsyncs the WAL on every commit. NORMAL would survive a crash of xlat64d but may lose
    // the last commits on power loss; an allocation the kernel already uses must not be lost
    // (after the reboot its block could go to someone else and tracing would name the wrong
    // subscriber). Batching (Transaction) keeps that to one fsync per batch.
    exec("PRAGMA synchronous=FULL", "opening");
    exec("PRAGMA foreign_keys=ON", "opening");
    // The WAL of a big batch is truncated after its checkpoint rather than left at full size.
    exec("PRAGMA journal_size_limit=67108864", "opening");
    // 64 MiB of page cache instead of 2: a bulk import writes five b-trees at once (the table and
    // its indexes); with a small cache SQLite spills and rereads their pages inside the
    // transaction, which made an import of a million subscribers several times slower.
    exec("PRAGMA cache_size=-65536", "opening");
    // Statement and savepoint journals in memory: a bulk import's multi-row INSERTs (and the
    // savepoints that group them) would otherwise copy the pages they change to a temporary
    // file first (0.6 s of write calls for a million rows). Only the rollback of a statement or
    // a savepoint reads them; a committed transaction's durability is the WAL's alone.
    exec("PRAGMA temp_store=MEMORY", "opening");
}

void Store::migrate() {
    auto version_now = [this] {
        auto q = query("PRAGMA user_version", "opening");
        return q.step() ? q.integer(0) : 0;
    };
    if (version_now() == kSchemaVersion) {
        return;
    }
    Transaction t(*this);
    // Read again under the write lock: another process may have migrated meanwhile.
    int64_t version = version_now();
    for (const auto& m : kMigrations) {
        if (m.to > version) {
            exec(m.sql, "migrating");
        }
    }
    exec(("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str(), "migrating");
    exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str(), "migrating");
    t.commit();
}

// --- plumbing ---

[[noreturn]] void Store::fail(int rc, const std::string& doing) const {
    std::string message = db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc);
    if (db_ && sqlite3_errcode(db_.get()) == SQLITE_OK) {
        message = sqlite3_errstr(rc);  // rc did not come from the last call on the connection
    }
    throw StoreError(kind_of(rc),
                     doing + " the state store " + path_ + ": " + message + hint(rc, path_));
}

void Store::exec(const char* sql, const char* doing) {
    int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
        fail(rc, doing);
    }
}

// Callers never nest two uses of one SQL text, so one cached statement per text suffices.
Store::Query Store::query(std::string_view sql, const char* doing) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
        sqlite3_stmt* raw = nullptr;
        int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
        StmtPtr stmt(raw);
        if (rc != SQLITE_OK) {
            fail(rc, doing);
        }
        it = statements_.emplace(std::string(sql), std::move(stmt)).first;
    }
    return Query(*this, it->second.get(), doing);
}

Store::Transaction::Transaction(Store& store) : store_(&store) {
    nested_ = sqlite3_get_autocommit(store.db_.get()) == 0;
    // IMMEDIATE takes the write lock now, so a transaction never fails half-way on a lock
    // another writer holds (busy_timeout waits for it instead).
    store.exec(nested_ ? "SAVEPOINT nested" : "BEGIN IMMEDIATE", "writing");
}

Store::Transaction::Transaction(Transaction&& other) noexcept
    : store_(other.store_), nested_(other.nested_), done_(other.done_) {
    other.done_ = true;
}

Store::Transaction::~Transaction() {
    if (done_) {
        return;
    }
    // Errors ignored: SQLite may already have rolled back itself (e.g. after SQLITE_FULL).
    const char* sql = nested_ ? "ROLLBACK TO nested; RELEASE nested" : "ROLLBACK";
    sqlite3_exec(store_->db_.get(), sql, nullptr, nullptr, nullptr);
}

void Store::Transaction::commit() {
    store_->exec(nested_ ? "RELEASE nested" : "COMMIT", "writing");
    done_ = true;
}

void Store::set_size_limit(uint64_t bytes) {
    int64_t page_size = 4096;
    {
        auto q = query("PRAGMA page_size", "configuring");
        if (q.step()) {
            page_size = q.integer(0);
        }
    }
    auto pages = std::to_string(bytes / static_cast<uint64_t>(page_size));
    auto q = query("PRAGMA max_page_count=" + pages, "configuring");
    q.step();
}

// --- subscribers ---

bool Store::add_subscriber(const Ipv6Prefix& prefix, const std::string& account, int64_t now) {
    Transaction t(*this);
    bool added = !subscriber(prefix);
    query(
        "INSERT INTO subscribers (prefix, account, created) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (prefix) DO UPDATE SET account = excluded.account",
        "writing")
        .bind(1, to_string(prefix))
        .bind(2, account)
        .bind(3, now)
        .run();
    t.commit();
    return added;
}

std::vector<Store::SubscriberChange> Store::add_subscribers(const std::vector<Subscriber>& subs) {
    Transaction t(*this);
    auto out = add_subscribers(t, subs);
    t.commit();
    return out;
}

std::vector<Store::SubscriberChange> Store::add_subscribers(const Transaction& t,
                                                            const std::vector<Subscriber>& subs) {
    std::vector<SubscriberChange> out(subs.size(), SubscriberChange::unchanged);
    size_t i = 0;
    for (; i + kRowsPerInsert <= subs.size(); i += kRowsPerInsert) {
        add_subscriber_rows(&subs[i], &out[i], may_roll_back_whole(t));
    }
    for (; i < subs.size(); ++i) {
        out[i] = add_subscriber_row(subs[i], to_string(subs[i].prefix));
    }
    return out;
}

Store::SubscriberChange Store::add_subscriber_row(const Subscriber& s, const std::string& prefix) {
    if (query("INSERT INTO subscribers (prefix, account, created) VALUES (?1, ?2, ?3) "
              "ON CONFLICT (prefix) DO NOTHING",
              "writing")
            .bind(1, prefix)
            .bind(2, s.account)
            .bind(3, s.created)
            .run() > 0) {
        return SubscriberChange::added;
    }
    const bool changed =
        query("UPDATE subscribers SET account = ?2 WHERE prefix = ?1 AND account != ?2", "writing")
            .bind(1, prefix)
            .bind(2, s.account)
            .run() > 0;
    return changed ? SubscriberChange::updated : SubscriberChange::unchanged;
}

namespace {

// "?1, ?2, ..., ?COUNT"
std::string parameter_list(size_t count) {
    std::string out;
    for (size_t p = 1; p <= count; ++p) {
        out += (p == 1 ? "?" : ", ?") + std::to_string(p);
    }
    return out;
}

std::string insert_subscribers_sql(size_t rows, const char* or_clause) {
    std::string sql =
        std::string("INSERT") + or_clause + " INTO subscribers (prefix, account, created) VALUES ";
    for (size_t r = 0; r < rows; ++r) {
        sql += (r == 0 ? "(?" : ", (?") + std::to_string(3 * r + 1) + ", ?" +
               std::to_string(3 * r + 2) + ", ?" + std::to_string(3 * r + 3) + ")";
    }
    return sql;
}

}  // namespace

// kRowsPerInsert subscribers: one read says which are there already and with what account; the
// new ones are then written with one statement when all are new (a first import), and the rest
// one by one. A repeated import only reads.
void Store::add_subscriber_rows(const Subscriber* rows, SubscriberChange* changes,
                                bool rollback_on_error) {
    static const std::string select_sql =
        "SELECT prefix, account FROM subscribers WHERE prefix IN (" +
        parameter_list(kRowsPerInsert) + ")";
    static const std::string insert_sql = insert_subscribers_sql(kRowsPerInsert, "");
    static const std::string insert_or_rollback_sql =
        insert_subscribers_sql(kRowsPerInsert, " OR ROLLBACK");
    std::array<std::string, kRowsPerInsert> prefixes;
    std::unordered_map<std::string_view, size_t> row_of;
    for (size_t r = 0; r < kRowsPerInsert; ++r) {
        prefixes[r] = to_string(rows[r].prefix);
        row_of.emplace(prefixes[r], r);
    }
    if (row_of.size() < kRowsPerInsert) {  // one prefix twice: in order, one by one
        for (size_t r = 0; r < kRowsPerInsert; ++r) {
            changes[r] = add_subscriber_row(rows[r], prefixes[r]);
        }
        return;
    }
    std::array<std::optional<std::string>, kRowsPerInsert> accounts;  // of those already there
    size_t present = 0;
    {
        auto q = query(select_sql, "reading");
        for (size_t r = 0; r < kRowsPerInsert; ++r) {
            q.bind(static_cast<int>(r + 1), prefixes[r]);
        }
        while (q.step()) {
            accounts[row_of.at(q.view(0))] = q.text(1);
            ++present;
        }
    }
    if (present == 0) {
        auto q = query(rollback_on_error ? insert_or_rollback_sql : insert_sql, "writing");
        for (size_t r = 0; r < kRowsPerInsert; ++r) {
            const int p = static_cast<int>(3 * r);
            q.bind(p + 1, prefixes[r]).bind(p + 2, rows[r].account).bind(p + 3, rows[r].created);
            changes[r] = SubscriberChange::added;
        }
        q.run();
        return;
    }
    for (size_t r = 0; r < kRowsPerInsert; ++r) {
        if (accounts[r] != rows[r].account) {
            changes[r] = add_subscriber_row(rows[r], prefixes[r]);
        }
    }
}

bool Store::remove_subscriber(const Ipv6Prefix& prefix) {
    return query("DELETE FROM subscribers WHERE prefix = ?1", "writing")
               .bind(1, to_string(prefix))
               .run() > 0;
}

std::optional<Subscriber> Store::subscriber(const Ipv6Prefix& prefix) {
    auto q = query("SELECT account, created FROM subscribers WHERE prefix = ?1", "reading");
    q.bind(1, to_string(prefix));
    if (!q.step()) {
        return std::nullopt;
    }
    return Subscriber{prefix, q.text(0), q.integer(1)};
}

std::vector<Subscriber> Store::subscribers() {
    auto q = query("SELECT prefix, account, created FROM subscribers ORDER BY prefix", "reading");
    std::vector<Subscriber> out;
    while (q.step()) {
        out.push_back({v6_column(q, 0), q.text(1), q.integer(2)});
    }
    return out;
}

// --- allocations ---

namespace {

constexpr int kAllocationParameters = 8;

// INSERT of ROWS open allocations in one statement, parameters numbered row by row.
std::string insert_allocations_sql(size_t rows, const char* or_clause = "") {
    std::string sql = std::string("INSERT") + or_clause +
                      " INTO allocations (subscriber, account, block, internal, public_address, "
                      "first_port, last_port, valid_from) VALUES ";
    for (size_t r = 0; r < rows; ++r) {
        sql += r == 0 ? "(" : ", (";
        for (int p = 1; p <= kAllocationParameters; ++p) {
            sql += (p == 1 ? "?" : ", ?") + std::to_string(r * kAllocationParameters + p);
        }
        sql += ")";
    }
    return sql;
}

}  // namespace

void Store::check_open(const Allocation& a) const {
    if (a.valid_until) {
        throw StoreError(StoreError::Kind::other,
                         "writing the state store " + path_ + ": allocation of block " +
                             std::to_string(a.block) + " to " + to_string(a.subscriber) +
                             " has an end; only open allocations are recorded");
    }
}

// Binds A as row ROW (0-based) of an allocation INSERT.
void Store::bind_allocation(Query& q, int row, const Allocation& a) {
    const int p = row * kAllocationParameters;
    q.bind(p + 1, to_string(a.subscriber))
        .bind(p + 2, a.account)
        .bind(p + 3, static_cast<int64_t>(a.block))
        .bind(p + 4, to_string(a.internal))
        .bind(p + 5, to_string(a.public_address))
        .bind(p + 6, int64_t{a.first_port})
        .bind(p + 7, int64_t{a.last_port})
        .bind(p + 8, a.valid_from);
}

void Store::insert_allocation(const Allocation& a) {
    check_open(a);
    static const std::string sql = insert_allocations_sql(1);
    auto q = query(sql, "writing");
    bind_allocation(q, 0, a);
    int rc = q.step_code();
    if (rc == SQLITE_DONE) {
        return;
    }
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        conflict(a);
    }
    fail(rc, "writing");
}

// kRowsPerInsert rows per statement: a bulk import spends less in preparing and finishing
// statements per row. A refused statement leaves nothing behind; its rows are then tried one by
// one, so that the error names the allocation refused.
void Store::insert_allocations(const Allocation* rows, bool rollback_on_error) {
    static const std::string sql = insert_allocations_sql(kRowsPerInsert);
    static const std::string or_rollback_sql =
        insert_allocations_sql(kRowsPerInsert, " OR ROLLBACK");
    {
        auto q = query(rollback_on_error ? or_rollback_sql : sql, "writing");
        for (size_t r = 0; r < kRowsPerInsert; ++r) {
            check_open(rows[r]);
            bind_allocation(q, static_cast<int>(r), rows[r]);
        }
        const int rc = q.step_code();
        if (rc == SQLITE_DONE) {
            return;
        }
        if (rc != SQLITE_CONSTRAINT_UNIQUE) {
            fail(rc, "writing");
        }
    }
    if (rollback_on_error) {
        conflict_in(rows, kRowsPerInsert);  // rolled back: no rows to try one by one
    }
    for (size_t r = 0; r < kRowsPerInsert; ++r) {
        insert_allocation(rows[r]);
    }
}

// Names who holds what, so the error says which of the two unique indexes refused A.
// Who holds A's block or A's subscriber already, if anyone does.
std::optional<std::string> Store::held_by(const Allocation& a) {
    {
        auto q = query(select_allocations("WHERE block = ?1 AND valid_until IS NULL"), "reading");
        q.bind(1, static_cast<int64_t>(a.block));
        if (q.step()) {
            auto held = allocation_row(q);
            return "block " + std::to_string(a.block) + " is already held by " +
                   to_string(held.subscriber) + " (since " + std::to_string(held.valid_from) + ")";
        }
    }
    auto q = query(select_allocations("WHERE subscriber = ?1 AND valid_until IS NULL"), "reading");
    q.bind(1, to_string(a.subscriber));
    if (q.step()) {
        auto held = allocation_row(q);
        return to_string(a.subscriber) + " already holds block " + std::to_string(held.block) +
               " (since " + std::to_string(held.valid_from) + ")";
    }
    return std::nullopt;
}

[[noreturn]] void Store::conflict(const Allocation& a) {
    throw StoreError(
        StoreError::Kind::conflict,
        "writing the state store " + path_ + ": " +
            held_by(a).value_or("allocation of block " + std::to_string(a.block) + " refused"));
}

// After a statement of ROWS rolled its transaction back: the first of them someone holds. The
// rows written before them in the transaction are gone too, so a conflict among those is told
// only as a refusal.
[[noreturn]] void Store::conflict_in(const Allocation* rows, size_t count) {
    for (size_t r = 0; r < count; ++r) {
        if (held_by(rows[r])) {
            conflict(rows[r]);
        }
    }
    throw StoreError(StoreError::Kind::conflict,
                     "writing the state store " + path_ + ": allocations of blocks " +
                         std::to_string(rows[0].block) + " to " +
                         std::to_string(rows[count - 1].block) +
                         " refused (two of them, or one and an allocation written before them, "
                         "hold one block or subscriber)");
}

int64_t Store::open_allocation(const Allocation& allocation) {
    insert_allocation(allocation);
    return sqlite3_last_insert_rowid(db_.get());
}

void Store::open_allocations(const std::vector<Allocation>& allocations) {
    Transaction t(*this);
    open_allocations(t, allocations);
    t.commit();
}

void Store::open_allocations(const Transaction& t, const std::vector<Allocation>& allocations) {
    size_t i = 0;
    for (; i + kRowsPerInsert <= allocations.size(); i += kRowsPerInsert) {
        insert_allocations(&allocations[i], may_roll_back_whole(t));
    }
    for (; i < allocations.size(); ++i) {
        insert_allocation(allocations[i]);
    }
}

// max(): a wall clock stepped backwards must not make an interval end before it began.
bool Store::close_allocation(const Ipv6Prefix& subscriber, uint64_t block, int64_t until) {
    return query(
               "UPDATE allocations SET valid_until = max(?3, valid_from) "
               "WHERE block = ?2 AND subscriber = ?1 AND valid_until IS NULL",
               "writing")
               .bind(1, to_string(subscriber))
               .bind(2, static_cast<int64_t>(block))
               .bind(3, until)
               .run() > 0;
}

uint64_t Store::close_all_open(int64_t until) {
    return query(
               "UPDATE allocations SET valid_until = max(?1, valid_from) "
               "WHERE valid_until IS NULL",
               "writing")
        .bind(1, until)
        .run();
}

std::vector<Allocation> Store::open_allocation_list() {
    auto q = query(select_allocations("WHERE valid_until IS NULL ORDER BY block"), "reading");
    std::vector<Allocation> out;
    {
        // One allocation of the vector instead of twenty doublings at a million rows.
        auto count = query("SELECT count(*) FROM allocations WHERE valid_until IS NULL", "reading");
        out.reserve(count.step() ? static_cast<size_t>(count.integer(0)) : 0);
    }
    while (q.step()) {
        out.push_back(allocation_row(q));
    }
    return out;
}

std::optional<Allocation> Store::trace(const Ipv4Address& address, uint16_t port, int64_t at) {
    auto q = query(
        select_allocations("WHERE public_address = ?1 AND first_port <= ?2 AND last_port >= ?2 "
                           "AND valid_from <= ?3 AND (valid_until IS NULL OR valid_until > ?3) "
                           "ORDER BY valid_from DESC LIMIT 1"),
        "reading");
    q.bind(1, to_string(address)).bind(2, int64_t{port}).bind(3, at);
    if (!q.step()) {
        return std::nullopt;
    }
    return allocation_row(q);
}

// Two halves, so that each has its partial index (a WHERE without `valid_until IS [NOT] NULL`
// could use neither).
std::vector<Allocation> Store::history(const Ipv6Prefix& subscriber) {
    static const std::string sql =
        select_allocations("WHERE subscriber = ?1 AND valid_until IS NOT NULL UNION ALL ") +
        select_allocations("WHERE subscriber = ?1 AND valid_until IS NULL ORDER BY valid_from, id");
    auto q = query(sql, "reading");
    q.bind(1, to_string(subscriber));
    std::vector<Allocation> out;
    while (q.step()) {
        out.push_back(allocation_row(q));
    }
    return out;
}

uint64_t Store::prune(int64_t older_than) {
    return query("DELETE FROM allocations WHERE valid_until IS NOT NULL AND valid_until < ?1",
                 "pruning")
        .bind(1, older_than)
        .run();
}

// --- EAMT ---

bool Store::add_eam(const EamEntry& entry, int64_t now) {
    return query(
               "INSERT INTO eam (ipv4, ipv6, created) VALUES (?1, ?2, ?3) "
               "ON CONFLICT DO NOTHING",
               "writing")
               .bind(1, to_string(entry.ipv4))
               .bind(2, to_string(entry.ipv6))
               .bind(3, now)
               .run() > 0;
}

bool Store::remove_eam(const Ipv4Prefix& ipv4) {
    return query("DELETE FROM eam WHERE ipv4 = ?1", "writing").bind(1, to_string(ipv4)).run() > 0;
}

std::vector<StoredEam> Store::eams() {
    auto q = query("SELECT ipv4, ipv6, created FROM eam ORDER BY ipv4", "reading");
    std::vector<StoredEam> out;
    while (q.step()) {
        out.push_back({{v4_prefix_column(q, 0), v6_column(q, 1)}, q.integer(2)});
    }
    return out;
}

// --- meta ---

std::optional<std::string> Store::meta(const std::string& key) {
    auto q = query("SELECT value FROM meta WHERE key = ?1", "reading");
    q.bind(1, key);
    if (!q.step()) {
        return std::nullopt;
    }
    return q.text(0);
}

void Store::set_meta(const std::string& key, const std::string& value) {
    query(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        "writing")
        .bind(1, key)
        .bind(2, value)
        .run();
}

}  // namespace xlat64
