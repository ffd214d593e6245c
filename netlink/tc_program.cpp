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

bpf_tc_hook egress_hook(int ifindex) {
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = ifindex;
    hook.attach_point = BPF_TC_EGRESS;
    return hook;
}

bpf_tc_opts filter_opts() {
    bpf_tc_opts opts{};
    opts.sz = sizeof(opts);
    opts.handle = TcEgressProgram::kHandle;
    opts.priority = TcEgressProgram::kPriority;
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

std::string program_tag_by_id(uint32_t id) {
    UniqueFd fd(bpf_prog_get_fd_by_id(id));
    if (!fd) {
        return {};
    }
    bpf_prog_info info{};
    uint32_t info_len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &info_len) < 0) {
        return {};
    }
    return to_hex(info.tag, sizeof(info.tag));
}

std::string normalize_tag(const std::string& tag) {
    std::string out;
    for (char c : tag) {
        if (std::isxdigit(static_cast<unsigned char>(c))) {
            out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    return out;
}

TcEgressProgram::TcEgressProgram(int ifindex, std::string device_name)
    : ifindex_(ifindex), device_name_(std::move(device_name)) {}

std::optional<AttachedProgram> TcEgressProgram::attached() const {
    bpf_tc_hook hook = egress_hook(ifindex_);
    bpf_tc_opts opts = filter_opts();
    int err = 0;
    {
        // Without a clsact qdisc the kernel answers "Parent Qdisc doesn't exists", which just
        // means nothing is attached.
        QuietLibbpf quiet;
        err = bpf_tc_query(&hook, &opts);
    }
    // ENOENT: no such filter; EINVAL: no clsact qdisc on the device yet.
    if (err == -ENOENT || err == -EINVAL) {
        return std::nullopt;
    }
    if (err < 0) {
        fail("querying the tc egress filter on " + device_name_, err);
    }
    return AttachedProgram{opts.prog_id, program_tag_by_id(opts.prog_id)};
}

void TcEgressProgram::attach(int program_fd) {
    bpf_tc_hook hook = egress_hook(ifindex_);
    int err = 0;
    {
        // An existing clsact qdisc (EEXIST, "Exclusivity flag on") is the usual case.
        QuietLibbpf quiet;
        err = bpf_tc_hook_create(&hook);
    }
    if (err < 0 && err != -EEXIST) {
        fail("adding the clsact qdisc to " + device_name_, err);
    }
    bpf_tc_opts opts = filter_opts();
    opts.prog_fd = program_fd;
    opts.flags = BPF_TC_F_REPLACE;
    err = bpf_tc_attach(&hook, &opts);
    if (err < 0) {
        fail("attaching the translator to tc egress of " + device_name_, err);
    }
}

void TcEgressProgram::detach() {
    bpf_tc_hook hook = egress_hook(ifindex_);
    bpf_tc_opts opts = filter_opts();
    QuietLibbpf quiet;
    int err = bpf_tc_detach(&hook, &opts);
    if (err < 0 && err != -ENOENT && err != -EINVAL) {
        fail("detaching the translator from " + device_name_, err);
    }
}

}  // namespace xlat64
