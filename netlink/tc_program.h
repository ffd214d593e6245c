// xlat64's BPF programs on tc hooks (clsact qdisc), attached and queried through libbpf's bpf_tc_*
// API. Each is one filter at a fixed handle and priority of its own, so a new program replaces
// the old one atomically (BPF_TC_F_REPLACE) and no packet passes untranslated in between:
//  - the translator on the egress of xlat64's own device (handle 1, priority 1);
//  - the ingress fast path on an operator's interface (translation.ingress_interfaces), at a
//    handle no other tool is likely to pick and priority 1, so it runs before the operator's own
//    filters; they still see every packet it leaves alone (it returns TC_ACT_UNSPEC for those).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace xlat64 {

struct AttachedProgram {
    uint32_t id = 0;
    std::string tag;   // lowercase hex, as bpftool prints it
    std::string name;  // bpf_prog_info.name (the kernel keeps the first 15 characters)
};

// Lowercase hex digits only, so tags printed with or without separators compare equal.
std::string normalize_tag(const std::string& tag);

// The program name (SEC("tc") function) of xlat64's ingress fast path. A filter at our ingress
// handle and priority whose program has another name is not ours and is never touched.
inline constexpr const char* kIngressProgramName = "xlat64_ingress";

enum class TcDirection { egress, ingress };

class TcProgram {
  public:
    // The egress filter on xlat64's device.
    static constexpr uint32_t kEgressHandle = 1;
    // The ingress filter on an operator's interface: "xlat" in ASCII, to be recognisable in
    // `tc filter show dev IF ingress`.
    static constexpr uint32_t kIngressHandle = 0x786c6174;
    static constexpr uint32_t kPriority = 1;

    TcProgram(int ifindex, std::string ifname, TcDirection direction);

    // What runs at our handle and priority (whoever attached it), or nullopt.
    std::optional<AttachedProgram> attached() const;
    // The program at our handle and priority when it is xlat64's ingress program (by name).
    std::optional<AttachedProgram> attached_ingress_program() const;
    // Creates the clsact qdisc when missing (an existing one is used as it is), then attaches or
    // atomically replaces the filter at our handle and priority.
    void attach(int program_fd);
    // Removes the filter at our handle and priority; a missing filter is not an error. The
    // qdisc is left in place: on xlat64's device it goes with the device; on an operator's
    // interface other tools' filters may live in it (an empty clsact qdisc may remain).
    // At ingress, only a filter running xlat64's ingress program is removed: returns false and
    // leaves it when the filter is someone else's.
    bool detach();

  private:
    std::string hook_name() const;

    int ifindex_;
    std::string ifname_;
    TcDirection direction_;
};

}  // namespace xlat64
