#include "daemon/control_client.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "daemon/control_protocol.h"

namespace xlat64 {
namespace {

// Bounds what a confused peer can make us buffer; real answers are far smaller.
constexpr size_t kMaxResponseBytes = 256 << 20;

std::string connect_hint(int error) {
    switch (error) {
        case ENOENT:
        case ECONNREFUSED:
            return " (is xlat64d running?)";
        case EACCES:
        case EPERM:
            return " (needs root or membership in group xlat64)";
        default:
            return "";
    }
}

void set_timeout(int fd, std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

}  // namespace

ControlClient::ControlClient(const std::filesystem::path& path, std::chrono::milliseconds timeout)
    : path_(path), fd_(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.native().empty() || path.native().size() >= sizeof(address.sun_path)) {
        throw ControlClientError("cannot connect to " + path.string() + ": path too long");
    }
    std::memcpy(address.sun_path, path.c_str(), path.native().size());
    if (!fd_ || connect(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0) {
        int error = errno;
        throw ControlClientError("cannot connect to " + path.string() + ": " +
                                 std::strerror(error) + connect_hint(error));
    }
    set_timeout(fd_.get(), timeout);
}

std::string ControlClient::read_line() {
    char buffer[65536];
    size_t end;
    while ((end = pending_.find('\n')) == std::string::npos) {
        ssize_t n = recv(fd_.get(), buffer, sizeof(buffer), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int error = errno;
            throw ControlClientError(
                "reading from " + path_.string() + ": " +
                (error == EAGAIN ? std::string("timed out") : std::strerror(error)));
        }
        if (n == 0) {
            throw ControlClientError("xlat64d closed " + path_.string() + " without answering");
        }
        pending_.append(buffer, static_cast<size_t>(n));
        if (pending_.size() > kMaxResponseBytes) {
            throw ControlClientError("response from xlat64d too large");
        }
    }
    std::string line = pending_.substr(0, end);
    pending_.erase(0, end + 1);
    return line;
}

nlohmann::json ControlClient::call(std::string_view command, const nlohmann::json& arguments) {
    nlohmann::json body = arguments.is_object() ? arguments : nlohmann::json::object();
    body["command"] = std::string(command);
    const std::string request = to_line(body);
    size_t sent = 0;
    while (sent < request.size()) {
        ssize_t n = send(fd_.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            throw ControlClientError("writing to " + path_.string() + ": " + std::strerror(errno));
        }
        sent += static_cast<size_t>(n);
    }
    Response response;
    try {
        response = parse_response(read_line());
    } catch (const ProtocolError& e) {
        throw ControlClientError(e.what());
    }
    if (!response.ok) {
        throw ControlClientError("xlat64d: " + response.error);
    }
    return response.result;
}

}  // namespace xlat64
