#include "netlink/tc_program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "netlink/unique_fd.h"

namespace xlat64 {
namespace {

bpf_tc_hook tc_hook(int ifindex, TcDirection direction) {
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = ifindex;
    hook.attach_point = direction == TcDirection::egress ? BPF_TC_EGRESS : BPF_TC_INGRESS;
    return hook;
}

bpf_tc_opts filter_opts(TcDirection direction) {
    bpf_tc_opts opts{};
    opts.sz = sizeof(opts);
    opts.handle =
        direction == TcDirection::egress ? TcProgram::kEgressHandle : TcProgram::kIngressHandle;
    opts.priority = TcProgram::kPriority;
    return opts;
}

// Mutes libbpf's log for one call whose failure is an expected answer, not a problem to report.
class QuietLibbpf {
  public:
    QuietLibbpf() : previous_(libbpf_set_print(nullptr)) {}
    ~QuietLibbpf() { libbpf_set_print(previous_); }
    QuietLibbpf(const QuietLibbpf&) = delete;
    QuietLibbpf& operator=(const QuietLibbpf&) = delete;

  private:
    libbpf_print_fn_t previous_;
};

[[noreturn]] void fail(const std::string& context, int libbpf_error) {
    throw std::runtime_error(context + ": " + std::strerror(-libbpf_error));
}

std::string to_hex(const unsigned char* bytes, size_t size) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string hex;
    for (size_t i = 0; i < size; ++i) {
        hex += kDigits[bytes[i] >> 4];
        hex += kDigits[bytes[i] & 0xf];
    }
    return hex;
}

}  // namespace

namespace {

// Tag and name of a loaded program; nullopt when it is gone.
std::optional<AttachedProgram> program_by_id(uint32_t id) {
    UniqueFd fd(bpf_prog_get_fd_by_id(id));
    if (!fd) {
        return std::nullopt;
    }
    bpf_prog_info info{};
    uint32_t info_len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &info_len) < 0) {
        return std::nullopt;
    }
    return AttachedProgram{id, to_hex(info.tag, sizeof(info.tag)),
                           std::string(info.name, strnlen(info.name, sizeof(info.name)))};
}

}  // namespace

std::string normalize_tag(const std::string& tag) {
    std::string out;
    for (char c : tag) {
        if (std::isxdigit(static_cast<unsigned char>(c))) {
            out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    return out;
}

TcProgram::TcProgram(int ifindex, std::string ifname, TcDirection direction)
    : ifindex_(ifindex), ifname_(std::move(ifname)), direction_(direction) {}

std::string TcProgram::hook_name() const {
    return direction_ == TcDirection::egress ? "egress" : "ingress";
}

std::optional<AttachedProgram> TcProgram::attached() const {
    bpf_tc_hook hook = tc_hook(ifindex_, direction_);
    bpf_tc_opts opts = filter_opts(direction_);
    int err = 0;
    {
        // Without a clsact qdisc the kernel answers "Parent Qdisc doesn't exists", which just
        // means nothing is attached.
        QuietLibbpf quiet;
        err = bpf_tc_query(&hook, &opts);
    }
    // ENOENT: no such filter; EINVAL: no clsact qdisc on the device yet (or, at an operator's
    // interface, another kind of filter at our priority).
    if (err == -ENOENT || err == -EINVAL) {
        return std::nullopt;
    }
    if (err < 0) {
        fail("querying the tc " + hook_name() + " filter on " + ifname_, err);
    }
    // A program that went away between the query and this lookup has an empty tag and name.
    return program_by_id(opts.prog_id).value_or(AttachedProgram{opts.prog_id, {}, {}});
}

std::optional<AttachedProgram> TcProgram::attached_ingress_program() const {
    auto program = attached();
    if (!program || program->name != kIngressProgramName) {
        return std::nullopt;
    }
    return program;
}

void TcProgram::attach(int program_fd) {
    bpf_tc_hook hook = tc_hook(ifindex_, direction_);
    int err = 0;
    {
        // An existing clsact qdisc (EEXIST, "Exclusivity flag on") is the usual case.
        QuietLibbpf quiet;
        err = bpf_tc_hook_create(&hook);
    }
    if (err < 0 && err != -EEXIST) {
        fail("adding the clsact qdisc to " + ifname_, err);
    }
    bpf_tc_opts opts = filter_opts(direction_);
    opts.prog_fd = program_fd;
    opts.flags = BPF_TC_F_REPLACE;
    err = bpf_tc_attach(&hook, &opts);
    if (err < 0) {
        fail(direction_ == TcDirection::egress
                 ? "attaching the translator to tc egress of " + ifname_
                 : std::string("attaching ") + kIngressProgramName + " to " + ifname_ + " ingress",
             err);
    }
}

bool TcProgram::detach() {
    if (direction_ == TcDirection::ingress) {
        auto program = attached();
        if (program && program->name != kIngressProgramName) {
            return false;
        }
    }
    bpf_tc_hook hook = tc_hook(ifindex_, direction_);
    bpf_tc_opts opts = filter_opts(direction_);
    QuietLibbpf quiet;
    int err = bpf_tc_detach(&hook, &opts);
    if (err < 0 && err != -ENOENT && err != -EINVAL) {
        fail(direction_ == TcDirection::egress ? "detaching the translator from " + ifname_
                                               : std::string("detaching ") + kIngressProgramName +
                                                     " from " + ifname_ + " ingress",
             err);
    }
    return true;
}

}  // namespace xlat64
