#include "storage/rest_fixture.h"

#include <chrono>

#include "server/repo_endpoint.h"

namespace cairn::storage::resttest {

RestServer::RestServer(std::map<std::string, std::shared_ptr<Backend>> backends)
    : backends_(std::move(backends)) {
  server::RepoEndpointHooks hooks;
  hooks.authenticate = [this](const httplib::Request& req) -> std::optional<server::Principal> {
    std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) != 0) return std::nullopt;
    std::lock_guard lock(mu_);
    auto it = tokens_.find(auth.substr(7));
    if (it == tokens_.end()) return std::nullopt;
    return it->second;
  };
  hooks.backend_for = [this](const std::string& service) -> core::Result<std::shared_ptr<Backend>> {
    auto it = backends_.find(service);
    if (it == backends_.end()) return core::not_found("no service " + service);
    return it->second;
  };
  hooks.audit = [this](const server::Principal& p, const std::string& action,
                       const std::string& service, const std::string& object, bool ok) {
    std::lock_guard lock(mu_);
    audit_.push_back(p.name + " " + action + " " + service + " " + object + " " +
                     (ok ? "ok" : "denied"));
  };
  server::register_repo_endpoint(server_, std::move(hooks));
  server_.set_payload_max_length(server::kMaxRepoObjectSize + 1024);
  port_ = server_.bind_to_any_port("127.0.0.1");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

RestServer::~RestServer() {
  server_.stop();
  if (thread_.joinable()) thread_.join();
}

std::string RestServer::add_token(const std::string& name, server::Role role,
                                  std::vector<std::string> services) {
  std::string secret = "tok-" + name + "-" + std::to_string(tokens_.size());
  std::lock_guard lock(mu_);
  tokens_[secret] = server::Principal{name, "id-" + name, role, std::move(services)};
  return secret;
}

RestOptions RestServer::options(const std::string& service, const std::string& token) const {
  RestOptions o;
  o.endpoint = endpoint();
  o.service = service;
  o.token = token;
  o.max_attempts = 3;
  o.initial_backoff = std::chrono::milliseconds(10);
  o.max_backoff = std::chrono::milliseconds(50);
  o.max_total_backoff = std::chrono::milliseconds(200);
  return o;
}

std::vector<std::string> RestServer::audit_lines() const {
  std::lock_guard lock(mu_);
  return audit_;
}

}  // namespace cairn::storage::resttest
