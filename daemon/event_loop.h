// A small poll(2) loop: the daemon is single-threaded, so signals (via signalfd), the control
// socket and its clients are all handled here, one event at a time.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

namespace xlat64 {

class EventLoop {
  public:
    using Handler = std::function<void(short revents)>;

    void watch(int fd, short events, Handler handler);
    void set_events(int fd, short events);
    void unwatch(int fd);
    // Called after every poll round, and at least once a second (timeouts).
    void on_tick(std::function<void()> hook) { tick_hooks_.push_back(std::move(hook)); }
    // Calls `hook` every `period` (not before the first period has passed), waking poll for it:
    // the systemd watchdog needs pings on time even when the loop is otherwise idle.
    void every(std::chrono::milliseconds period, std::function<void()> hook);
    // Calls `hook` once, `delay` from now (a burst of events handled together after it).
    void after(std::chrono::milliseconds delay, std::function<void()> hook);

    void run();
    void stop() { running_ = false; }

  private:
    struct Watch {
        short events;
        Handler handler;
        // Tells a watch from a later one on a reused fd number within one poll round.
        uint64_t serial;
    };
    struct Timer {
        std::chrono::milliseconds period;
        std::chrono::steady_clock::time_point due;
        std::function<void()> hook;
    };
    void dispatch(const std::vector<pollfd>& ready, const std::vector<uint64_t>& serials);
    int poll_timeout_ms() const;
    void run_due_timers();

    std::map<int, Watch> watches_;
    std::vector<std::function<void()>> tick_hooks_;
    std::vector<Timer> timers_;
    std::vector<Timer> one_shots_;
    uint64_t next_serial_ = 0;
    bool running_ = false;
};

}  // namespace xlat64
