// The reconciler's handling of changes a backend finishes in the background (a new nftables
// table's blocks map, filled on another thread): they end with the plan, before it is verified,
// and their errors are the plan's. A backend of a few lines stands in for the kernel.
#include <catch2/catch.hpp>

#include "daemon/nat64_runtime.h"
#include "daemon/reconciler.h"

using namespace xlat64;
using Catch::Matchers::Contains;

namespace {

// Records what the reconciler asks in order. A SetNatBlocks of a new table "runs in the
// background" until finish_pending_changes(); observe() refuses to run before it, as a backend
// that must not read a table still being filled (BpfBackend finishes it first and rethrows).
class FakeBackend : public Backend {
  public:
    std::vector<std::string> calls;
    std::string fill_error;  // what the background fill fails with ("": it succeeds)
    std::string failing;     // the kind of change that fails ("": none)
    bool pending = false;

    ObservedState observe(const DesiredState&) override {
        calls.push_back("observe");
        if (pending) {
            throw std::runtime_error("observe while a fill is pending");
        }
        return {};  // an empty kernel: every change is planned again
    }
    void apply(const Change& change) override {
        const std::string what = describe(change);
        calls.push_back(what);
        if (const auto* blocks = std::get_if<change::SetNatBlocks>(&change);
            blocks && blocks->new_table) {
            pending = true;
        }
        if (!failing.empty() && what.starts_with(failing)) {
            throw std::runtime_error("boom");
        }
    }
    void apply_eams(std::span<const Change>) override { calls.push_back("eams"); }
    void finish_pending_changes() override {
        calls.push_back("finish");
        if (std::exchange(pending, false) && !fill_error.empty()) {
            throw std::runtime_error("set NAT44 blocks failed: " + fill_error);
        }
    }
    std::vector<Counter> counters() override { return {}; }
    std::vector<Counter> ingress_counters() override { return {}; }
    nlohmann::json status() override { return {}; }
    nlohmann::json ingress_status(const std::vector<std::string>&,
                                  const std::optional<std::string>&) override {
        return {};
    }
    std::unique_ptr<Nat64Runtime> nat64_runtime(Nat64Ledger&) override { return nullptr; }

    size_t index_of(const std::string& prefix) const {
        for (size_t i = 0; i < calls.size(); ++i) {
            if (calls[i].starts_with(prefix)) {
                return i;
            }
        }
        FAIL("no call " << prefix);
        return 0;
    }
};

Config nat64_config() {
    return parse_config(R"(nat64:
  prefixes: [2001:db8:100::/56]
  subscriber_length: 64
  internal_pool: 100.64.0.0/16
  public_prefixes: [203.0.113.0/28]
)",
                        "t");
}

}  // namespace

TEST_CASE("reconcile: background work ends with the plan, before the verification") {
    FakeBackend backend;
    Reconciler reconciler(backend);
    // The fake kernel never converges: the verification finds changes left.
    CHECK_THROWS_WITH(reconciler.reconcile(nat64_config()), Contains("still differs"));
    const size_t fill = backend.index_of("set NAT44 blocks");
    const size_t finish = backend.index_of("finish");
    CHECK(fill < finish);
    REQUIRE(finish + 1 < backend.calls.size());
    CHECK(backend.calls[finish + 1] == "observe");  // the verification
}

TEST_CASE("reconcile: a failed background fill fails the plan, naming the change") {
    FakeBackend backend;
    backend.fill_error = "no memory";
    Reconciler reconciler(backend);
    CHECK_THROWS_WITH(reconciler.reconcile(nat64_config()),
                      "reconcile: set NAT44 blocks failed: no memory");
    CHECK(backend.calls.back() == "finish");  // not verified
}

TEST_CASE("reconcile: after a failed change, background work ends without masking the error") {
    FakeBackend backend;
    backend.fill_error = "no memory";
    backend.failing = "set NAT64 admitted prefixes";  // planned after the blocks
    Reconciler reconciler(backend);
    CHECK_THROWS_WITH(reconciler.reconcile(nat64_config()),
                      Contains("set NAT64 admitted prefixes") && Contains("failed: boom") &&
                          !Contains("no memory"));
    CHECK(backend.calls.back() == "finish");
    // The rollback reads the kernel again: nothing is left pending to fail it.
    CHECK_NOTHROW(reconciler.plan(nat64_config()));
}
