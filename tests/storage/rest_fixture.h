// RestServer: a real cairn repository endpoint (server/repo_endpoint.h) on
// 127.0.0.1 for the REST backend's tests: an httplib::Server on a free port
// serving one local repository folder per service, with a fixed table of
// bearer tokens (token -> principal) and an in-memory audit log.
// The destructor stops the server and joins its thread. Thread-safe after
// start() (the audit log has its own lock).
#pragma once

#include <httplib.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/access.h"
#include "storage/backend.h"
#include "storage/rest/rest_backend.h"

namespace cairn::storage::resttest {

class RestServer {
 public:
  // `backends`: service -> its repository's backend (on the server side).
  explicit RestServer(std::map<std::string, std::shared_ptr<Backend>> backends);
  ~RestServer();
  RestServer(const RestServer&) = delete;
  RestServer& operator=(const RestServer&) = delete;

  // Registers a token; returns its secret.
  std::string add_token(const std::string& name, server::Role role,
                        std::vector<std::string> services);
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Options of a client for `service` with `token` (fast retries for tests).
  RestOptions options(const std::string& service, const std::string& token) const;
  std::vector<std::string> audit_lines() const;  // "name action service object ok|denied"

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::map<std::string, std::shared_ptr<Backend>> backends_;
  mutable std::mutex mu_;
  std::map<std::string, server::Principal> tokens_;
  std::vector<std::string> audit_;
};

}  // namespace cairn::storage::resttest
