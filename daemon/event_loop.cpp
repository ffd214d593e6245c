#include "daemon/event_loop.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <system_error>

namespace xlat64 {
namespace {

constexpr int kTickMs = 1000;

}  // namespace

void EventLoop::watch(int fd, short events, Handler handler) {
    watches_[fd] = Watch{events, std::move(handler), next_serial_++};
}

void EventLoop::set_events(int fd, short events) {
    if (auto it = watches_.find(fd); it != watches_.end()) {
        it->second.events = events;
    }
}

void EventLoop::unwatch(int fd) {
    watches_.erase(fd);
}

void EventLoop::every(std::chrono::milliseconds period, std::function<void()> hook) {
    period = std::max(period, std::chrono::milliseconds(1));
    timers_.push_back(Timer{period, std::chrono::steady_clock::now() + period, std::move(hook)});
}

void EventLoop::after(std::chrono::milliseconds delay, std::function<void()> hook) {
    delay = std::max(delay, std::chrono::milliseconds(0));
    one_shots_.push_back(Timer{delay, std::chrono::steady_clock::now() + delay, std::move(hook)});
}

int EventLoop::poll_timeout_ms() const {
    using namespace std::chrono;
    const auto now = steady_clock::now();
    milliseconds timeout(kTickMs);
    for (const auto* list : {&timers_, &one_shots_}) {
        for (const Timer& timer : *list) {
            // Rounded up, so poll does not wake a fraction of a millisecond early and spin.
            const auto left = ceil<milliseconds>(timer.due - now);
            timeout = std::clamp(left, milliseconds(0), timeout);
        }
    }
    return static_cast<int>(timeout.count());
}

void EventLoop::run_due_timers() {
    const auto now = std::chrono::steady_clock::now();
    for (Timer& timer : timers_) {
        if (timer.due <= now) {
            // From now, not from the missed deadline: after a long stall (a big reload) one call
            // is enough, not a burst of catch-up calls.
            timer.due = now + timer.period;
            timer.hook();
        }
    }
    // Taken out before they run: a hook may schedule another one-shot.
    std::vector<Timer> due;
    auto not_due = std::partition(one_shots_.begin(), one_shots_.end(),
                                  [&](const Timer& t) { return t.due > now; });
    std::move(not_due, one_shots_.end(), std::back_inserter(due));
    one_shots_.erase(not_due, one_shots_.end());
    for (Timer& timer : due) {
        timer.hook();
    }
}

void EventLoop::dispatch(const std::vector<pollfd>& ready, const std::vector<uint64_t>& serials) {
    for (size_t i = 0; i < ready.size() && running_; ++i) {
        if (ready[i].revents == 0) {
            continue;
        }
        // A handler may have closed this fd (or another one) earlier in this round.
        auto it = watches_.find(ready[i].fd);
        if (it == watches_.end() || it->second.serial != serials[i]) {
            continue;
        }
        Handler handler = it->second.handler;  // the watch may be removed while it runs
        handler(ready[i].revents);
    }
}

void EventLoop::run() {
    running_ = true;
    while (running_) {
        std::vector<pollfd> fds;
        std::vector<uint64_t> serials;
        for (const auto& [fd, watch] : watches_) {
            fds.push_back(pollfd{fd, watch.events, 0});
            serials.push_back(watch.serial);
        }
        if (poll(fds.data(), fds.size(), poll_timeout_ms()) < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::system_error(errno, std::generic_category(), "poll");
        }
        dispatch(fds, serials);
        run_due_timers();
        for (const auto& hook : tick_hooks_) {
            hook();
        }
    }
}

}  // namespace xlat64
