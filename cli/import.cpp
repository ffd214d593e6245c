#include "cli/import.h"

#include <algorithm>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <sstream>

#include "daemon/control_client.h"
#include "daemon/control_protocol.h"
#include "daemon/subscriber_import.h"

namespace xlat64 {
namespace {

// Subscribers per request, and so per commit: 65,536, about 3 MB of JSON with typical account
// ids, unless that many lines would pass kChunkBytes. A chunk of 65,536 with 253-byte account ids
// is about 19 MB, more than the daemon takes from root (kMaxAdminRequestBytes).
constexpr size_t kChunk = 65536;
constexpr size_t kChunkBytes = kMaxAdminRequestBytes / 2;  // the rest: JSON around the text
constexpr size_t kMaxPrefixText = 43;  // "xxxx:...:xxxx/128", the longest a prefix is written

struct ChunkRange {
    size_t first = 0, last = 0;  // subscribers [first, last)
};

// At most what S's line takes in a request: the prefix, the account id with the characters JSON
// escapes counted twice, a space and a newline.
size_t request_bytes(const SubscriberLine& s) {
    auto escaped = std::count_if(s.account.begin(), s.account.end(),
                                 [](char c) { return c == '"' || c == '\\'; });
    return kMaxPrefixText + s.account.size() + static_cast<size_t>(escaped) + 2;
}

std::vector<ChunkRange> chunk_ranges(const std::vector<SubscriberLine>& subscribers) {
    std::vector<ChunkRange> out;
    size_t first = 0, bytes = 0;
    for (size_t i = 0; i < subscribers.size(); ++i) {
        const size_t line = request_bytes(subscribers[i]);
        if (i > first && (i - first == kChunk || bytes + line > kChunkBytes)) {
            out.push_back({first, i});
            first = i;
            bytes = 0;
        }
        bytes += line;
    }
    if (first < subscribers.size()) {
        out.push_back({first, subscribers.size()});
    }
    return out;
}

std::string read_input(const std::string& file) {
    if (file == "-") {
        return std::string(std::istreambuf_iterator<char>(std::cin), {});
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read " + file);
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string name_of(const std::string& file) {
    return file == "-" ? "<stdin>" : file;
}

struct Problems {
    std::vector<ImportProblem> shown;  // with the file's line numbers
    size_t count = 0;
};

void print_problems(const std::string& file, const Problems& problems) {
    for (const ImportProblem& p : problems.shown) {
        std::cerr << name_of(file) << ":" << p.line << ": " << p.message << "\n";
    }
    if (problems.count > problems.shown.size()) {
        std::cerr << "... and " << problems.count - problems.shown.size() << " more problems\n";
    }
    std::cerr << "xlat64ctl: " << problems.count << " problem" << (problems.count == 1 ? "" : "s")
              << " in " << name_of(file) << "; nothing was imported\n";
}

// The canonical text of every chunk, formatted once (the check pass and the import both send
// each chunk) on a second thread, which works ahead while the daemon handles the chunks before.
class ChunkTexts {
  public:
    ChunkTexts(const std::vector<SubscriberLine>& subscribers,
               const std::vector<ChunkRange>& ranges) {
        std::vector<std::promise<std::string>> promises(ranges.size());
        for (auto& promise : promises) {
            texts_.push_back(promise.get_future().share());
        }
        worker_ = std::async(
            std::launch::async, [&subscribers, &ranges, promises = std::move(promises)]() mutable {
                for (size_t i = 0; i < promises.size(); ++i) {
                    promises[i].set_value(
                        subscriber_import_text(subscribers, ranges[i].first, ranges[i].last));
                }
            });
    }
    // The text of chunk I.
    const std::string& text(size_t i) const { return texts_.at(i).get(); }

  private:
    std::vector<std::shared_future<std::string>> texts_;
    std::future<void> worker_;  // last: joined before the texts go
};

nlohmann::json call_chunk(ControlClient& client, const ChunkTexts& texts, size_t chunk,
                          nlohmann::json extra) {
    extra["subscribers"] = texts.text(chunk);
    return client.call("subscriber-import", extra);
}

// The daemon's view of every chunk: admitted prefixes, the subscriber length. Its line numbers
// are the chunk's; line i of a chunk is subscribers[first + i - 1].
Problems check_with_daemon(ControlClient& client, const std::vector<SubscriberLine>& subscribers,
                           const std::vector<ChunkRange>& ranges, const ChunkTexts& texts,
                           nlohmann::json& first_answer, bool count_unleased, size_t& unleased) {
    Problems problems;
    for (size_t chunk = 0; chunk < ranges.size(); ++chunk) {
        const size_t first = ranges[chunk].first;
        nlohmann::json answer = call_chunk(
            client, texts, chunk,
            {{"check", true}, {"count_free", chunk == 0}, {"count_unleased", count_unleased}});
        for (const auto& p : answer.at("problems")) {
            if (problems.shown.size() < kImportProblemsShown) {
                const size_t line = subscribers.at(first + p.at("line").get<size_t>() - 1).line;
                problems.shown.push_back({line, p.at("error").get<std::string>()});
            }
        }
        problems.count += answer.at("problem_count").get<size_t>();
        unleased += answer.value("unleased", size_t{0});
        if (chunk == 0) {
            first_answer = answer;
        }
    }
    return problems;
}

// Whether the pool can give a block to every subscriber of the file that holds none: counted
// only when the file has more subscribers than there are free blocks (a second pass).
bool enough_blocks(ControlClient& client, const std::vector<SubscriberLine>& subscribers,
                   const std::vector<ChunkRange>& ranges, const ChunkTexts& texts,
                   const nlohmann::json& first_answer, const std::string& file) {
    if (!first_answer.contains("free_blocks")) {
        return true;  // deterministic mode: the configuration gives every subscriber its block
    }
    const auto free = first_answer["free_blocks"].get<size_t>();
    if (subscribers.size() <= free) {
        return true;
    }
    nlohmann::json ignored;
    size_t unleased = 0;
    check_with_daemon(client, subscribers, ranges, texts, ignored, true, unleased);
    if (unleased <= free) {
        return true;
    }
    std::cerr << "xlat64ctl: " << name_of(file) << ": " << unleased
              << " of its subscribers need a port block, only " << free
              << " are free (grow nat64.public_prefixes); nothing was imported\n";
    return false;
}

struct Totals {
    size_t subscribers = 0, added = 0, updated = 0, unchanged = 0, leased = 0;
};

void add(Totals& t, const nlohmann::json& answer) {
    t.subscribers += answer.value("subscribers", size_t{0});
    t.added += answer.value("added", size_t{0});
    t.updated += answer.value("updated", size_t{0});
    t.unchanged += answer.value("unchanged", size_t{0});
    t.leased += answer.value("leased", size_t{0});
}

void print_totals(const ImportOptions& options, const Totals& t) {
    if (options.json) {
        std::cout << nlohmann::json{{"file", name_of(options.file)},
                                    {"subscribers", t.subscribers},
                                    {"added", t.added},
                                    {"updated", t.updated},
                                    {"unchanged", t.unchanged},
                                    {"leased", t.leased}}
                         .dump(2)
                  << "\n";
        return;
    }
    std::cout << "imported " << t.subscribers << " subscribers from " << name_of(options.file)
              << ": " << t.added << " added, " << t.updated << " with a new account id, "
              << t.unchanged << " unchanged; " << t.leased << " port blocks leased\n";
}

// A chunk that failed: what is imported and what is not. An answer from the daemon means the
// chunk was refused as a whole; no answer (it died, or the connection broke) means the chunk may
// or may not have been committed.
void report_failure(const std::string& file, const std::vector<SubscriberLine>& subscribers,
                    size_t first, size_t last, const Totals& totals, const std::string& error) {
    const bool refused = error.rfind("xlat64d: ", 0) == 0;
    std::cerr << "xlat64ctl: " << name_of(file) << ": importing lines " << subscribers[first].line
              << "-" << subscribers[last - 1].line << " failed: " << error << "\nxlat64ctl: "
              << (refused ? "nothing of those lines was imported"
                          : "xlat64d did not answer: those lines may or may not be imported");
    if (first > 0) {
        std::cerr << "; the " << totals.subscribers << " subscribers up to line "
                  << subscribers[first - 1].line << " are imported and stay";
    }
    std::cerr << ". The import is idempotent: run it again once the cause is fixed.\n";
}

}  // namespace

int run_import(const ImportOptions& options) {
    const ParsedImport parsed =
        parse_subscriber_import(read_input(options.file), kImportProblemsShown);
    if (parsed.problem_count > 0) {
        print_problems(options.file, {parsed.problems, parsed.problem_count});
        return 1;
    }
    const auto& subscribers = parsed.subscribers;
    ControlClient client(options.socket, options.timeout);
    const std::vector<ChunkRange> ranges = chunk_ranges(subscribers);
    const ChunkTexts texts(subscribers, ranges);
    nlohmann::json first_answer;
    size_t unused = 0;
    Problems problems =
        check_with_daemon(client, subscribers, ranges, texts, first_answer, false, unused);
    if (problems.count > 0) {
        print_problems(options.file, problems);
        return 1;
    }
    if (!enough_blocks(client, subscribers, ranges, texts, first_answer, options.file)) {
        return 1;
    }
    Totals totals;
    for (size_t chunk = 0; chunk < ranges.size(); ++chunk) {
        const auto [first, last] = ranges[chunk];
        try {
            // Every chunk but the last is answered while its leases are still being added: the
            // next one waits for them in the daemon (and fails if they did).
            add(totals,
                call_chunk(client, texts, chunk, {{"pipelined", last < subscribers.size()}}));
        } catch (const std::exception& e) {
            report_failure(options.file, subscribers, first, last, totals, e.what());
            return 1;
        }
    }
    print_totals(options, totals);
    return 0;
}

}  // namespace xlat64
