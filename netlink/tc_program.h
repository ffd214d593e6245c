// The BPF program on the device's tc egress hook (clsact qdisc), attached and queried through
// libbpf's bpf_tc_* API. One filter at a fixed handle and priority, so a new program replaces the
// old one atomically (BPF_TC_F_REPLACE) and no packet passes untranslated in between.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace xlat64 {

struct AttachedProgram {
    uint32_t id = 0;
    std::string tag;  // lowercase hex, as bpftool prints it
};

// Tag of a loaded program, by id; empty when the program is gone.
std::string program_tag_by_id(uint32_t id);
// Lowercase hex digits only, so tags printed with or without separators compare equal.
std::string normalize_tag(const std::string& tag);

class TcEgressProgram {
  public:
    static constexpr uint32_t kHandle = 1;
    static constexpr uint32_t kPriority = 1;

    TcEgressProgram(int ifindex, std::string device_name);

    std::optional<AttachedProgram> attached() const;
    // Creates the clsact qdisc when missing, then attaches or atomically replaces the filter.
    void attach(int program_fd);
    // Removes our filter; a missing filter is not an error. The qdisc goes with the device.
    void detach();

  private:
    int ifindex_;
    std::string device_name_;
};

}  // namespace xlat64
