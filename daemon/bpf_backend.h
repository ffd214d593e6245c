// The BPF backend: the xlat64 tun device, its routes, the tc egress attachment and the
// BpfTranslator (program + pinned maps), composed behind the Backend interface.
#pragma once

#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "daemon/backend.h"
#include "daemon/bpf_translator.h"
#include "daemon/nat64_maps.h"
#include "netlink/nft_nat_table.h"
#include "netlink/nl_socket.h"
#include "netlink/tc_program.h"
#include "netlink/tun_device.h"

namespace xlat64 {

class BpfBackend : public Backend {
  public:
    // Ensures bpffs and the pin directory, then loads the translator; maps already pinned there
    // are reused with their contents (adopting the running translator).
    BpfBackend(std::string device_name, const std::filesystem::path& pin_dir);

    ObservedState observe(const DesiredState& want) override;
    void apply(const Change& change) override;
    void apply_eams(std::span<const Change> changes) override;
    void finish_pending_changes() override;
    std::vector<Counter> counters() override;
    std::vector<Counter> ingress_counters() override;
    nlohmann::json status() override;
    nlohmann::json ingress_status(const std::vector<std::string>& configured,
                                  const std::optional<std::string>& nat_table) override;
    std::unique_ptr<Nat64Runtime> nat64_runtime(Nat64Ledger& ledger) override;

  private:
    int device_ifindex();
    TcProgram device_egress(int ifindex) const;
    void attach_ingress(const change::AttachIngress& change);
    void detach_ingress(const change::DetachIngress& change);
    // The ingress instance for L2_HEADER_LEN bytes of link-layer header, loaded on first use
    // (at most two: Ethernet and none), sharing the main translator's maps.
    BpfTranslator& ingress_translator(uint32_t l2_header_len);
    // NAME as the plan sees it, nullopt when it does not exist. WITH_IPV4: the sorted names of
    // the interfaces with an IPv4 address (interfaces_with_ipv4_address()).
    std::optional<IngressLink> observe_ingress_link(const std::string& name,
                                                    const std::vector<std::string>& with_ipv4);
    // The configured ingress interfaces that exist.
    std::vector<IngressLink> observe_ingress_links(const std::vector<std::string>& names);
    nlohmann::json program_status(int ifindex) const;
    std::optional<std::vector<uint32_t>> nat_trusted_ifindexes(const std::string& table);
    NatTableState observe_nat_table(const DesiredState& want,
                                    std::vector<uint32_t>& trusted_ifindexes);
    void reset_nat64(const change::ResetNat64State& change);
    Nat64Maps nat64_maps(uint8_t subscriber_len) const;
    void set_nat_blocks(const change::SetNatBlocks& change);

    NlSocket sock_;
    NftSocket nft_sock_;
    TunDevice device_;
    std::unique_ptr<BpfTranslator> translator_;
    std::map<uint32_t, std::unique_ptr<BpfTranslator>> ingress_translators_;
    // A new table's blocks map being filled on another thread, with its own socket.
    std::future<void> nat_fill_;
};

// Removes what the BPF backend created for this configuration: xlat64's ingress filters on every
// interface of the namespace (by handle, priority and program name; the qdiscs stay), the device
// if it carries our alias (its routes and tc filter go with it), the map pins and xlat64's
// nftables table (if it carries our comment). Idempotent.
void teardown_bpf_backend(const Config& config);

}  // namespace xlat64
