// `cairn server`: the HTTPS API (/api/v1, docs/api.yaml), the repository
// endpoint for write-only agents, and the dashboard (web/).
//
// Every request is authenticated by a bearer token (server/tokens.h),
// authorized by role and service scope (server/access.h) and written to the
// audit log (server/audit_log.h) before the answer leaves. Work that takes
// long (backups, drills, restores, forget) runs as child jobs
// (server/jobs.h) followed by id; reads of repositories (snapshot lists,
// browsing, downloads) also run as children of this binary, so a repository
// secret never has to live in the server's own memory for longer than a call.
//
// HTTPS only (TLS 1.2+), except plain HTTP on a loopback address when asked
// for explicitly. Request bodies are limited (1 MiB for the API, 64 MiB for
// the repository endpoint), reads time out, and stop() drains: the listener
// closes, requests in flight finish, running jobs are cancelled.
//
// Thread-safe: stop() and reload() may be called from a signal thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "policy/catalog.h"

namespace cairn::server {

struct ServerOptions {
  std::string config_path;             // re-read on reload()
  std::string cairn_exe;               // the binary that runs jobs (this one)
  std::vector<std::string> job_args;   // global options every job gets (--cacert ...)
  std::string listen;                  // overrides the policy's server.listen
  bool plain_http = false;             // no TLS: refused unless the address is loopback
  bool with_daemon = false;            // also run the scheduler in this process
};

// One API operation, as routed and as described in docs/api.yaml.
struct RouteInfo {
  std::string method;      // GET, POST, DELETE
  std::string path;        // OpenAPI template: /api/v1/services/{service}
  std::string permission;  // "authenticated", "read", "trigger", "restore", "admin"
  std::string action;      // audit action name
};
// Every API route (tests compare it with docs/api.yaml).
std::vector<RouteInfo> api_routes();

class Server {
 public:
  static core::Result<std::unique_ptr<Server>> create(ServerOptions options, policy::Catalog catalog);
  ~Server();

  // Serves until stop(). Fails at once when the address cannot be bound or
  // the certificate cannot be loaded.
  core::Status run();
  void stop();
  void reload();
  // The bound port (after run() started listening; 0 before).
  int port() const;

 private:
  struct Impl;
  friend std::vector<RouteInfo> api_routes();
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn::server
