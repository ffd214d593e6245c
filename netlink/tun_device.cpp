#include "netlink/tun_device.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <netlink/errno.h>
#include <netlink/route/link/inet6.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>

#include "netlink/links.h"
#include "netlink/nl_ptr.h"
#include "netlink/unique_fd.h"

namespace xlat64 {
namespace {

bool is_managed(rtnl_link* link) {
    const char* kind = rtnl_link_get_type(link);
    const char* alias = rtnl_link_get_ifalias(link);
    // ARPHRD_NONE tells a tun (layer 3) from a tap device, which shares the "tun" kind.
    return kind != nullptr && std::string_view(kind) == "tun" &&
           rtnl_link_get_arptype(link) == ARPHRD_NONE && alias != nullptr &&
           std::string_view(alias) == kDeviceAlias;
}

bool addr_gen_none(rtnl_link* link) {
    uint8_t mode = 0;
    if (rtnl_link_inet6_get_addr_gen_mode(link, &mode) < 0) {
        return true;  // no IPv6 on this device: nothing to silence
    }
    return mode == IN6_ADDR_GEN_MODE_NONE;
}

nl::LinkPtr managed_link(NlSocket& sock, const std::string& name) {
    nl::LinkPtr link = find_link(sock, name);
    if (!link) {
        throw NetlinkError("device " + name + " does not exist");
    }
    if (!is_managed(link.get())) {
        throw NetlinkError(not_managed_message(name));
    }
    return link;
}

nl::LinkPtr new_changes() {
    nl::LinkPtr changes(rtnl_link_alloc());
    if (!changes) {
        throw std::bad_alloc();
    }
    return changes;
}

void apply_changes(NlSocket& sock, rtnl_link* link, rtnl_link* changes,
                   const std::string& context) {
    sock.call(context, [&] { return rtnl_link_change(sock.get(), link, changes, 0); });
}

void create_persistent_tun(const std::string& name) {
    if (name.empty() || name.size() >= IFNAMSIZ) {
        throw std::invalid_argument("device name \"" + name + "\" must be 1 to " +
                                    std::to_string(IFNAMSIZ - 1) + " characters");
    }
    UniqueFd tun(open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (!tun) {
        throw std::system_error(errno, std::generic_category(), "opening /dev/net/tun");
    }
    ifreq request{};
    std::memcpy(request.ifr_name, name.data(), name.size());
    request.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (ioctl(tun.get(), TUNSETIFF, &request) < 0) {
        throw std::system_error(errno, std::generic_category(), "creating tun device " + name);
    }
    // Persistent: the device outlives this descriptor, so it needs no reader (the tc program
    // does the work) and survives daemon restarts.
    if (ioctl(tun.get(), TUNSETPERSIST, 1) < 0) {
        throw std::system_error(errno, std::generic_category(),
                                "making tun device " + name + " persistent");
    }
}

}  // namespace

TunDevice::TunDevice(NlSocket& sock, std::string name) : sock_(sock), name_(std::move(name)) {}

std::optional<DeviceState> TunDevice::observe() const {
    nl::LinkPtr link = find_link(sock_, name_);
    if (!link) {
        return std::nullopt;
    }
    DeviceState state;
    state.ifindex = rtnl_link_get_ifindex(link.get());
    state.mtu = rtnl_link_get_mtu(link.get());
    state.up = (rtnl_link_get_flags(link.get()) & IFF_UP) != 0;
    state.managed = is_managed(link.get());
    state.addr_gen_none = addr_gen_none(link.get());
    return state;
}

void TunDevice::create(uint32_t mtu) {
    if (find_link(sock_, name_)) {
        throw NetlinkError("creating device " + name_ + ": a device of that name exists");
    }
    create_persistent_tun(name_);
    try {
        nl::LinkPtr link = find_link(sock_, name_);
        nl::LinkPtr changes = new_changes();
        rtnl_link_set_ifalias(changes.get(), kDeviceAlias);
        rtnl_link_set_mtu(changes.get(), mtu);
        // Before IFF_UP, so the kernel never starts IPv6 autoconfiguration on the device.
        rtnl_link_inet6_set_addr_gen_mode(changes.get(), IN6_ADDR_GEN_MODE_NONE);
        apply_changes(sock_, link.get(), changes.get(), "configuring new device " + name_);
    } catch (...) {
        // Without our alias the device would block every later start; it is ours to delete.
        if (nl::LinkPtr link = find_link(sock_, name_)) {
            rtnl_link_delete(sock_.get(), link.get());
        }
        throw;
    }
    set_up();
}

void TunDevice::set_mtu(uint32_t mtu) {
    nl::LinkPtr link = managed_link(sock_, name_);
    nl::LinkPtr changes = new_changes();
    rtnl_link_set_mtu(changes.get(), mtu);
    apply_changes(sock_, link.get(), changes.get(),
                  "setting mtu " + std::to_string(mtu) + " on " + name_);
}

void TunDevice::disable_addr_gen() {
    nl::LinkPtr link = managed_link(sock_, name_);
    nl::LinkPtr changes = new_changes();
    rtnl_link_inet6_set_addr_gen_mode(changes.get(), IN6_ADDR_GEN_MODE_NONE);
    apply_changes(sock_, link.get(), changes.get(), "setting addr_gen_mode none on " + name_);
}

void TunDevice::set_up() {
    nl::LinkPtr link = managed_link(sock_, name_);
    nl::LinkPtr changes = new_changes();
    rtnl_link_set_flags(changes.get(), IFF_UP);
    apply_changes(sock_, link.get(), changes.get(), "bringing up " + name_);
}

bool TunDevice::remove() {
    nl::LinkPtr link = find_link(sock_, name_);
    if (!link) {
        return false;
    }
    if (!is_managed(link.get())) {
        throw NetlinkError(not_managed_message(name_));
    }
    sock_.call("deleting device " + name_,
               [&] { return rtnl_link_delete(sock_.get(), link.get()); });
    return true;
}

}  // namespace xlat64
