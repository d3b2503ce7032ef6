// RestBackend: a repository behind the cairn server's repository endpoint
// (server/repo_endpoint.h; protocol in docs/repo-endpoint.md), spoken to with
// libcurl over HTTPS (plain HTTP only with --insecure-http).
//
// Location: "rest:https://host:port/<service>" (or "rest:http://..."). The
// objects live under https://host:port/api/v1/repo/<service>/. The bearer
// token comes from CAIRN_TOKEN or the first line of CAIRN_TOKEN_FILE; it is
// never logged nor put into error messages.
//
// How the Backend contract maps onto the endpoint:
// - save(): PUT; the server refuses an existing name with 409 (kAlreadyExists).
// - load(): GET with a Range header; stat(): HEAD; list(): GET of the type's
//   folder (JSON); remove(): DELETE (a missing object is success).
// - create(): the endpoint cannot create repositories (the server's admin
//   runs `cairn init` on the repository's own location); kAlreadyExists when
//   config exists, success otherwise.
// - 401/403 -> kPermissionDenied, 404 -> kNotFound, 416 -> kInvalidArgument;
//   5xx, 429 and transport errors are retried with exponential backoff and
//   jitter, kTransient once the budget is spent.
//
// Thread-safe: every call uses its own CURL easy handle; connections and TLS
// sessions are shared through one CURLSH.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "storage/backend.h"

namespace cairn::storage {

struct RestOptions {
  std::string endpoint;  // "https://host:port" (scheme, host and port; no path)
  std::string service;   // the repository's service name
  std::string token;     // bearer token; "" sends none (the server answers 401)
  std::string ca_file;   // CA bundle for https (--cacert); "" = system store
  bool insecure_tls = false;
  int connections = 4;  // uploads in flight

  int max_attempts = 6;
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{8000};
  std::chrono::milliseconds max_total_backoff{30000};
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::seconds stall_timeout{60};  // slower than 1 KiB/s for this long: abandoned

  // Parses "rest:http(s)://host[:port]/<service>"; the token from
  // CAIRN_TOKEN, else the first line of the file CAIRN_TOKEN_FILE names.
  static core::Result<RestOptions> from_location(const std::string& location);
};

class RestBackend : public Backend {
 public:
  explicit RestBackend(RestOptions options);
  ~RestBackend() override;
  RestBackend(const RestBackend&) = delete;
  RestBackend& operator=(const RestBackend&) = delete;

  core::Status save(const Handle& h, core::ByteView data) override;
  core::Result<core::Bytes> load(const Handle& h, uint64_t offset = 0,
                                 uint64_t length = 0) override;
  core::Result<FileInfo> stat(const Handle& h) override;
  core::Status list(FileType t, const std::function<void(const FileInfo&)>& fn) override;
  core::Status remove(const Handle& h) override;
  core::Result<bool> exists() override;
  core::Status create() override;
  std::string location() const override;
  int preferred_upload_concurrency() const override { return options_.connections; }
  bool prefers_whole_reads() const override { return true; }

  struct Request;
  struct Response;

 private:
  core::Result<Response> call(const Request& req);
  core::Result<Response> perform_once(const Request& req);
  core::Status error_of(const Request& req, const Response& resp) const;
  std::string url_of(const std::string& object) const;

  const RestOptions options_;
  struct Shared;
  std::unique_ptr<Shared> shared_;
};

}  // namespace cairn::storage
