// EventLoop::after: the one-shot delay the daemon's link watch uses to handle a burst of link
// events with one reconcile.
#include <catch2/catch.hpp>

#include <chrono>

#include "daemon/event_loop.h"

using namespace xlat64;
using namespace std::chrono_literals;

TEST_CASE("event loop: a one-shot runs once, after its delay", "[event_loop]") {
    EventLoop loop;
    const auto start = std::chrono::steady_clock::now();
    int runs = 0;
    std::chrono::steady_clock::duration waited{};
    loop.after(50ms, [&] {
        ++runs;
        waited = std::chrono::steady_clock::now() - start;
    });
    // Stops the loop well after the one-shot would have run again, were it periodic.
    loop.after(300ms, [&] { loop.stop(); });
    loop.run();
    CHECK(runs == 1);
    CHECK(waited >= 50ms);
    CHECK(waited < 250ms);
}

TEST_CASE("event loop: a one-shot may schedule another", "[event_loop]") {
    EventLoop loop;
    int first = 0;
    int second = 0;
    loop.after(10ms, [&] {
        ++first;
        loop.after(10ms, [&] {
            ++second;
            loop.stop();
        });
    });
    loop.run();
    CHECK(first == 1);
    CHECK(second == 1);
}
