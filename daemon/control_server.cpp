#include "daemon/control_server.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "daemon/log.h"

namespace xlat64 {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxClients = 32;
constexpr auto kIdleTimeout = std::chrono::seconds(30);
// A client that sends requests but does not read the answers stops being read (back-pressure)
// long before this; it only bounds the answers to one burst of pipelined requests.
constexpr size_t kMaxPendingOutput = 4 << 20;
constexpr size_t kReadChunk = 4096;
constexpr int kReadChunksPerEvent = 16;  // then give the other clients a turn

[[noreturn]] void fail_errno(const std::string& context) {
    throw std::system_error(errno, std::generic_category(), context);
}

std::optional<gid_t> lookup_group(const char* name) {
    std::vector<char> buffer(4096);
    while (true) {
        group entry{};
        group* found = nullptr;
        int err = getgrnam_r(name, &entry, buffer.data(), buffer.size(), &found);
        if (err == ERANGE) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        return err == 0 && found != nullptr ? std::optional<gid_t>(found->gr_gid) : std::nullopt;
    }
}

sockaddr_un socket_address(const fs::path& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string& text = path.native();
    if (text.empty() || text.size() >= sizeof(address.sun_path)) {
        throw std::runtime_error("control.socket " + text + ": path must be 1 to " +
                                 std::to_string(sizeof(address.sun_path) - 1) + " bytes");
    }
    std::memcpy(address.sun_path, text.data(), text.size());
    return address;
}

void prepare_directory(const fs::path& path) {
    const fs::path parent = path.parent_path();
    std::error_code ec;
    if (parent.empty() || fs::exists(parent, ec)) {
        return;
    }
    fs::create_directories(parent, ec);
    if (ec) {
        throw std::system_error(ec, "creating " + parent.string());
    }
    fs::permissions(parent, fs::perms(0755), ec);
}

// The caller has checked that nobody listens there, so a socket file is a leftover of a daemon
// that died; anything else at that path is not ours to delete.
void remove_stale_socket(const fs::path& path) {
    struct stat info {};
    if (lstat(path.c_str(), &info) < 0) {
        return;
    }
    if (!S_ISSOCK(info.st_mode)) {
        throw std::runtime_error("control.socket " + path.string() +
                                 " exists and is not a socket; not replacing it");
    }
    if (unlink(path.c_str()) < 0) {
        fail_errno("removing stale control socket " + path.string());
    }
}

UniqueFd listen_on(const fs::path& path, std::optional<gid_t> group) {
    sockaddr_un address = socket_address(path);
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        fail_errno("creating the control socket");
    }
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0) {
        fail_errno("binding the control socket " + path.string());
    }
    // Nobody can connect before listen(), so owner and mode are right before anyone can.
    if (group && chown(path.c_str(), static_cast<uid_t>(-1), *group) < 0) {
        log_warning("control socket: cannot give " + path.string() + " to group " + kControlGroup +
                    ": " + std::strerror(errno));
    }
    if (chmod(path.c_str(), 0660) < 0) {
        fail_errno("setting the mode of " + path.string());
    }
    if (listen(fd.get(), 16) < 0) {
        fail_errno("listening on " + path.string());
    }
    return fd;
}

std::vector<gid_t> peer_groups(int fd) {
    std::vector<gid_t> groups(64);
    socklen_t length = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &length) < 0) {
        if (errno != ERANGE) {
            return {};  // kernels before 4.13: the primary group still counts
        }
        groups.resize(length / sizeof(gid_t));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &length) < 0) {
            return {};
        }
    }
    groups.resize(length / sizeof(gid_t));
    return groups;
}

PeerCredentials peer_credentials(int fd) {
    PeerCredentials peer;
    ucred credentials{};
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0) {
        peer.pid = credentials.pid;
        peer.uid = credentials.uid;
        peer.gid = credentials.gid;
        peer.groups = peer_groups(fd);
    }
    return peer;  // unknown credentials get no access
}

enum class ReadResult { more, end_of_stream, failed };

ReadResult read_some(int fd, LineBuffer& input, bool& overflow) {
    char buffer[kReadChunk];
    for (int i = 0; i < kReadChunksPerEvent; ++i) {
        ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
        if (n > 0) {
            if (!input.append(std::string_view(buffer, static_cast<size_t>(n)))) {
                overflow = true;
                return ReadResult::more;
            }
            continue;
        }
        if (n == 0) {
            return ReadResult::end_of_stream;
        }
        if (errno == EINTR) {
            continue;
        }
        return errno == EAGAIN || errno == EWOULDBLOCK ? ReadResult::more : ReadResult::failed;
    }
    return ReadResult::more;
}

}  // namespace

ControlServer::ControlServer(EventLoop& loop, fs::path path, CommandTable commands)
    : loop_(loop),
      path_(std::move(path)),
      commands_(std::move(commands)),
      group_(lookup_group(kControlGroup)) {
    prepare_directory(path_);
    remove_stale_socket(path_);
    listener_ = listen_on(path_, group_);
    loop_.watch(listener_.get(), POLLIN, [this](short) { accept_clients(); });
    loop_.on_tick([this] { expire_idle_clients(); });
}

ControlServer::~ControlServer() {
    for (const auto& [fd, client] : clients_) {
        loop_.unwatch(fd);
    }
    loop_.unwatch(listener_.get());
    unlink(path_.c_str());
}

void ControlServer::accept_clients() {
    while (true) {
        UniqueFd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            return;  // EAGAIN; or EMFILE and the like, retried on the next event
        }
        if (clients_.size() >= kMaxClients) {
            continue;  // closed right away: the client sees EOF and may retry
        }
        auto client = std::make_unique<Client>();
        client->access = peer_access(peer_credentials(fd.get()), group_);
        client->input = LineBuffer(max_request_bytes(client->access));
        client->last_activity = std::chrono::steady_clock::now();
        client->fd = std::move(fd);
        const int raw = client->fd.get();
        clients_[raw] = std::move(client);
        loop_.watch(raw, POLLIN, [this, raw](short revents) { on_client_event(raw, revents); });
    }
}

void ControlServer::on_client_event(int fd, short revents) {
    Client& client = *clients_.at(fd);
    client.last_activity = std::chrono::steady_clock::now();
    if (revents & (POLLERR | POLLNVAL)) {
        close_client(fd);
        return;
    }
    if ((revents & (POLLIN | POLLHUP)) && !read_input(client)) {
        close_client(fd);
        return;
    }
    answer_requests(client);
    if (!flush_output(client) || (client.closing && client.output.empty())) {
        close_client(fd);
        return;
    }
    update_interest(client);
}

bool ControlServer::read_input(Client& client) {
    bool overflow = false;
    ReadResult result = read_some(client.fd.get(), client.input, overflow);
    if (overflow) {
        const size_t limit = max_request_bytes(client.access);
        client.input = LineBuffer(limit);
        client.output += error_response("request longer than " + std::to_string(limit) + " bytes");
        client.closing = true;
        return true;
    }
    if (result == ReadResult::end_of_stream) {
        // A client may shut down its sending side and still wait for the answers.
        client.closing = true;
    }
    return result != ReadResult::failed;
}

void ControlServer::answer_requests(Client& client) {
    while (client.output.size() < kMaxPendingOutput) {
        auto line = client.input.next_line();
        if (!line) {
            return;
        }
        Reply reply = dispatch(commands_, *line, client.access);
        client.output += reply.line;
        if (reply.close) {
            client.closing = true;
            client.input =
                LineBuffer(max_request_bytes(client.access));  // garbage: ignore the rest
            return;
        }
    }
}

bool ControlServer::flush_output(Client& client) {
    while (!client.output.empty()) {
        ssize_t n = send(client.fd.get(), client.output.data(), client.output.size(),
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        client.output.erase(0, static_cast<size_t>(n));
    }
    return true;
}

void ControlServer::update_interest(Client& client) {
    short events = 0;
    if (!client.output.empty()) {
        events |= POLLOUT;
    } else if (!client.closing) {
        // Reading only once the answers are out is the back-pressure on pipelining clients.
        events |= POLLIN;
    }
    loop_.set_events(client.fd.get(), events);
}

void ControlServer::close_client(int fd) {
    loop_.unwatch(fd);
    clients_.erase(fd);
}

void ControlServer::expire_idle_clients() {
    const auto deadline = std::chrono::steady_clock::now() - kIdleTimeout;
    std::vector<int> idle;
    for (const auto& [fd, client] : clients_) {
        if (client->last_activity < deadline) {
            idle.push_back(fd);
        }
    }
    for (int fd : idle) {
        close_client(fd);
    }
}

bool control_socket_answers(const fs::path& path) {
    sockaddr_un address{};
    try {
        address = socket_address(path);
    } catch (const std::exception&) {
        return false;
    }
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    return fd && connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
}

}  // namespace xlat64
