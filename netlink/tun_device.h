// The xlat64 device: a persistent layer-3 tun device that no process reads. The tc program on its
// egress translates and redirects to its own ingress, so the device only has to exist.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "netlink/nl_socket.h"

namespace xlat64 {

// Marks the device as ours. Only a tun device carrying exactly this alias is ever changed or
// deleted, so a device an operator made with the same name is never touched.
inline constexpr const char* kDeviceAlias =
    "xlat64: managed by xlat64d, remove with xlat64d --teardown";

inline std::string not_managed_message(const std::string& name) {
    return "device " + name + " exists and is not managed by xlat64d; choose another device.name";
}

struct DeviceState {
    int ifindex = 0;
    uint32_t mtu = 0;
    bool up = false;
    // A layer-3 tun device with kDeviceAlias.
    bool managed = false;
    // IPv6 addr_gen_mode none, or no IPv6 on the device: the kernel sends no RS/DAD/MLD into it.
    bool addr_gen_none = false;
};

class TunDevice {
  public:
    TunDevice(NlSocket& sock, std::string name);

    const std::string& name() const { return name_; }
    // nullopt: no device of that name.
    std::optional<DeviceState> observe() const;

    // Creates the persistent tun device, marks it ours, sets its MTU and addr_gen_mode none, and
    // brings it up. Throws if a device of that name appeared meanwhile.
    void create(uint32_t mtu);
    // These refuse (throw) unless the device exists and is managed.
    void set_mtu(uint32_t mtu);
    void disable_addr_gen();
    void set_up();
    // Deletes the device (its routes and tc qdisc go with it). Returns false when there is no
    // device; throws when the device is not ours.
    bool remove();

  private:
    NlSocket& sock_;
    std::string name_;
};

}  // namespace xlat64
