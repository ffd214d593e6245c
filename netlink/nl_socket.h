// An rtnetlink socket (libnl-route-3) that turns failures into exceptions carrying the kernel's
// own words: the errno text ("File exists", as ip(8) prints it) and the extended ack message.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

struct nl_sock;
struct nlmsgerr;
struct sockaddr_nl;

namespace xlat64 {

class NetlinkError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class NlSocket {
  public:
    // Connects to NETLINK_ROUTE in the caller's network namespace.
    NlSocket();
    ~NlSocket();
    // Not movable: libnl's error callback keeps a pointer to this object.
    NlSocket(const NlSocket&) = delete;
    NlSocket& operator=(const NlSocket&) = delete;

    nl_sock* get() const { return sock_.get(); }

    // Runs one libnl call; a negative result throws NetlinkError "CONTEXT: REASON".
    template <typename Call>
    int call(const std::string& context, Call&& libnl_call) {
        clear_kernel_error();
        int result = libnl_call();
        if (result < 0) {
            throw NetlinkError(context + ": " + describe(result));
        }
        return result;
    }

    // The reason for a failed call: the kernel's errno text and ext-ack message when the kernel
    // refused, libnl's own text otherwise.
    std::string describe(int libnl_error) const;
    // errno of the last kernel refusal since clear_kernel_error(), 0 if none.
    int kernel_errno() const { return kernel_errno_; }
    void clear_kernel_error();

  private:
    struct SockDeleter {
        void operator()(nl_sock* sock) const;
    };
    static int on_error(sockaddr_nl* peer, nlmsgerr* error, void* self);

    std::unique_ptr<nl_sock, SockDeleter> sock_;
    int kernel_errno_ = 0;
    std::string kernel_message_;
};

}  // namespace xlat64
