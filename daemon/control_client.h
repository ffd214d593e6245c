// The client side of the control protocol, for xlat64ctl (and scripts linking it).
#pragma once

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>

#include "netlink/unique_fd.h"

namespace xlat64 {

class ControlClientError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class ControlClient {
  public:
    // Connects; throws ControlClientError "cannot connect to PATH: REASON (HINT)".
    ControlClient(const std::filesystem::path& path, std::chrono::milliseconds timeout);

    // Sends one request and returns its result; the daemon's error is thrown as
    // ControlClientError.
    // ARGUMENTS (an object) become further keys of the request.
    nlohmann::json call(std::string_view command, const nlohmann::json& arguments = {});

  private:
    std::string read_line();

    std::filesystem::path path_;
    UniqueFd fd_;
    std::string pending_;
};

}  // namespace xlat64
