// bpffs, where the translator's maps are pinned so they outlive the daemon.
#pragma once

#include <filesystem>

namespace xlat64 {

inline constexpr const char* kBpffsMountPoint = "/sys/fs/bpf";

// Mounts bpffs on /sys/fs/bpf when nothing is mounted there (minimal systems, containers), then
// creates pin_dir (mode 0700). Throws when pin_dir would not lie on a bpffs.
void ensure_pin_dir(const std::filesystem::path& pin_dir);

bool is_on_bpffs(const std::filesystem::path& path);

}  // namespace xlat64
