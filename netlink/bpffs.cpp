#include "netlink/bpffs.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>
#include <system_error>

namespace xlat64 {
namespace fs = std::filesystem;
namespace {

// pin_dir itself may not exist yet: its filesystem is that of its nearest existing ancestor.
fs::path nearest_existing(fs::path path) {
    std::error_code ec;
    while (!fs::exists(path, ec) && path.has_relative_path()) {
        path = path.parent_path();
    }
    return path;
}

void mount_bpffs() {
    if (mount("bpf", kBpffsMountPoint, "bpf", 0, "mode=0700") < 0) {
        throw std::system_error(errno, std::generic_category(),
                                std::string("mounting bpffs on ") + kBpffsMountPoint);
    }
}

}  // namespace

bool is_on_bpffs(const fs::path& path) {
    struct statfs info {};
    return statfs(path.c_str(), &info) == 0 &&
           static_cast<unsigned long>(info.f_type) == BPF_FS_MAGIC;
}

void ensure_pin_dir(const fs::path& pin_dir) {
    if (!is_on_bpffs(kBpffsMountPoint)) {
        mount_bpffs();
    }
    const fs::path absolute = fs::absolute(pin_dir);
    if (!is_on_bpffs(nearest_existing(absolute))) {
        throw std::runtime_error("bpf.pin_dir " + pin_dir.string() +
                                 " is not on a bpffs; use a directory under " + kBpffsMountPoint);
    }
    std::error_code ec;
    fs::create_directories(absolute, ec);
    if (ec) {
        throw std::system_error(ec, "creating bpf.pin_dir " + pin_dir.string());
    }
    // Map pins grant access to the translator's tables; keep them root-only like the mount.
    fs::permissions(absolute, fs::perms::owner_all, ec);
}

}  // namespace xlat64
