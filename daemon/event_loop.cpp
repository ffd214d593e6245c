#include "daemon/event_loop.h"

#include <poll.h>

#include <cerrno>
#include <system_error>

namespace xlat64 {

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
    constexpr int kTickMs = 1000;
    running_ = true;
    while (running_) {
        std::vector<pollfd> fds;
        std::vector<uint64_t> serials;
        for (const auto& [fd, watch] : watches_) {
            fds.push_back(pollfd{fd, watch.events, 0});
            serials.push_back(watch.serial);
        }
        if (poll(fds.data(), fds.size(), kTickMs) < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::system_error(errno, std::generic_category(), "poll");
        }
        dispatch(fds, serials);
        for (const auto& hook : tick_hooks_) {
            hook();
        }
    }
}

}  // namespace xlat64
