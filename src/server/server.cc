#include "server/server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <httplib.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "core/process.h"
#include "daemon/alerts.h"
#include "daemon/daemon.h"
#include "daemon/service_status.h"
#include "daemon/state_store.h"
#include "drill/drill.h"
#include "repo/timefmt.h"
#include "server/audit_log.h"
#include "server/jobs.h"
#include "server/rate_limiter.h"
#include "server/repo_endpoint.h"
#include "storage/backend.h"
#include "server/tokens.h"

namespace cairn::server {

namespace {

using nlohmann::json;
using Params = std::map<std::string, std::string>;

constexpr size_t kMaxApiBody = 1 << 20;
constexpr int kAuthFailures = 10;                     // per source and window
constexpr std::chrono::seconds kAuthWindow{60};
constexpr std::chrono::seconds kSnapshotCacheTtl{10};
constexpr size_t kMaxListing = 16 << 20;              // bytes of a child's listing output

daemon::Time now_s() { return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()); }

bool valid_name(const std::string& s) {
  static const std::regex re(R"(^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$)");
  return std::regex_match(s, re);
}
bool is_hex(const std::string& s, size_t len) {
  return s.size() == len && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// A path inside a snapshot: absolute, no "..", no control characters.
bool valid_snapshot_path(const std::string& p) {
  if (p.empty() || p[0] != '/' || p.size() > 4096) return false;
  for (char c : p)
    if (static_cast<unsigned char>(c) < 0x20) return false;
  for (size_t i = 0; i < p.size();) {
    size_t j = p.find('/', i + 1);
    if (j == std::string::npos) j = p.size();
    std::string part = p.substr(i + 1, j - i - 1);
    if (part == ".." || part == ".") return false;
    i = j;
  }
  return true;
}

bool loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.starts_with("127.");
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}
void error_reply(httplib::Response& res, int status, const std::string& message) {
  reply(res, status, {{"error", message}});
}

// Runs `argv` and returns its stdout (bounded); the error carries its stderr.
// `warnings_ok`: exit status 3 (finished with warnings) counts as success.
core::Result<std::string> run_child(const std::vector<std::string>& argv, bool warnings_ok = false) {
  core::ProcessOptions po;
  po.new_process_group = true;
  po.env = {"CAIRN_NO_AUDIT=1"};  // the API call is audited already
  ASSIGN_OR_RETURN(auto p, core::Subprocess::start(argv, po));
  std::string out;
  uint8_t buf[16384];
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, p->read(buf, sizeof buf));
    if (n == 0) break;
    if (out.size() + n > kMaxListing) return core::invalid_argument("the listing is too large; ask for a subfolder");
    out.append(reinterpret_cast<char*>(buf), n);
  }
  core::Status st = p->wait();
  if (!st.ok() && !(warnings_ok && p->exit_code() == 3)) {
    auto j = json::parse(out, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string())
      return core::Status(st.code(), j["error"].get<std::string>());
    return st;
  }
  return out;
}

}  // namespace

// One API call: the request, its principal, its route parameters, and what
// goes into the audit log.
struct Call {
  const httplib::Request& req;
  httplib::Response& res;
  Principal principal;
  Params params;
  std::shared_ptr<const policy::Catalog> catalog;
  const policy::Service* service = nullptr;  // set when the route has {service}
  std::string object;                        // for the audit log
};

struct Route {
  RouteInfo info;
  std::vector<std::string> segments;  // of info.path
  std::function<void(Call&)> handler;
};

struct Server::Impl {
  ServerOptions options;
  std::mutex mu;  // guards catalog
  std::shared_ptr<const policy::Catalog> catalog;
  std::unique_ptr<daemon::StateStore> store;
  std::unique_ptr<TokenService> tokens;
  std::unique_ptr<AuditLog> audit;
  std::unique_ptr<JobRunner> jobs;
  FailureLimiter limiter{kAuthFailures, kAuthWindow};
  std::unique_ptr<httplib::Server> http;
  std::vector<Route> routes;
  std::atomic<int> port{0};
  std::unique_ptr<daemon::Daemon> daemon;
  std::thread daemon_thread;
  std::string restore_root;

  // Snapshot lists per service, kept kSnapshotCacheTtl: listing opens the
  // repository (a key derivation of ~0.5 s), so concurrent requests share
  // one refresh (the service's own mutex) and reuse it for a while.
  struct SnapshotList {
    std::mutex refresh;
    std::chrono::steady_clock::time_point at{};
    json list;
  };
  // Storage backends of the services' repositories, for the repository
  // endpoint (opened on first use; dropped on reload).
  std::mutex backends_mu;
  std::map<std::string, std::shared_ptr<storage::Backend>> backends;
  core::Result<std::shared_ptr<storage::Backend>> backend_for(const std::string& service);

  std::mutex cache_mu;  // guards the map and each entry's at/list
  std::map<std::string, std::shared_ptr<SnapshotList>> snapshot_cache;

  std::shared_ptr<const policy::Catalog> current() {
    std::lock_guard lock(mu);
    return catalog;
  }
  std::vector<std::string> child_argv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {options.cairn_exe, "--json", "--no-progress", "--quiet"};
    argv.insert(argv.end(), options.job_args.begin(), options.job_args.end());
    argv.insert(argv.end(), {"--config", options.config_path});
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  void add(std::string method, std::string path, std::string permission, std::string action,
           std::function<void(Call&)> handler) {
    Route r{{std::move(method), path, std::move(permission), std::move(action)}, {}, std::move(handler)};
    for (size_t i = 1; i <= path.size();) {
      size_t j = path.find('/', i);
      if (j == std::string::npos) j = path.size();
      r.segments.push_back(path.substr(i, j - i));
      i = j + 1;
    }
    routes.push_back(std::move(r));
  }
  void build_routes();
  void dispatch(const httplib::Request& req, httplib::Response& res);
  std::optional<Principal> authenticate(const httplib::Request& req, httplib::Response& res);
  void record(const Call* call, const httplib::Request& req, const std::string& principal, const std::string& role,
              const std::string& action, const std::string& service, const std::string& object, int status);

  // Handlers.
  core::Result<json> snapshots_of(const policy::Service& svc, bool fresh);
  bool own_snapshot(Call& c, const std::string& id);
  void start_job(Call& c, JobSpec spec);
};

std::optional<Principal> Server::Impl::authenticate(const httplib::Request& req, httplib::Response& res) {
  std::string source = req.remote_addr;
  if (int64_t wait = limiter.blocked_for(source); wait > 0) {
    res.set_header("Retry-After", std::to_string(wait));
    error_reply(res, 429, "too many failed authentications from this address; try again later");
    record(nullptr, req, "anonymous", "", "auth.blocked", "", "", 429);
    return std::nullopt;
  }
  std::string header = req.get_header_value("Authorization");
  core::Status why;
  if (header.starts_with("Bearer ")) {
    auto p = tokens->authenticate(header.substr(7), now_s());
    if (p.ok()) return *p;
    why = p.status();
  } else {
    why = core::Status(core::Code::kPermissionDenied, header.empty() ? "no token" : "not a bearer token");
  }
  limiter.record_failure(source);
  spdlog::warn("authentication failed from {}: {}", source, why.message());
  res.set_header("WWW-Authenticate", "Bearer realm=\"cairn\"");
  error_reply(res, 401, "authentication required: send Authorization: Bearer <token>");
  record(nullptr, req, "anonymous", "", "auth.failure", "", why.message(), 401);
  return std::nullopt;
}

void Server::Impl::record(const Call* call, const httplib::Request& req, const std::string& principal,
                          const std::string& role, const std::string& action, const std::string& service,
                          const std::string& object, int status) {
  AuditEntry e;
  e.principal = principal;
  e.role = role;
  e.action = action;
  e.service = service;
  e.object = object;
  e.source = req.remote_addr;
  if (status < 300) e.result = "ok";
  else if (status == 401) e.result = "unauthenticated";
  else if (status == 403) e.result = "denied";
  else if (status == 404) e.result = "not_found";
  else if (status == 429) e.result = "rate_limited";
  else e.result = fmt::format("error {}", status);
  if (call != nullptr && status >= 400) {
    auto j = json::parse(call->res.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string())
      e.result += ": " + j["error"].get<std::string>().substr(0, 300);
  }
  if (auto st = audit->append(e); !st.ok()) spdlog::error("audit log: {}", st.message());
}

void Server::Impl::dispatch(const httplib::Request& req, httplib::Response& res) {
  res.set_header("Cache-Control", "no-store");
  // Find the route first, answer only after authentication: without a
  // valid token every path is a 401, so probing reveals no endpoint.
  std::vector<std::string> parts;
  for (size_t i = 1; i <= req.path.size();) {
    size_t j = req.path.find('/', i);
    if (j == std::string::npos) j = req.path.size();
    parts.push_back(req.path.substr(i, j - i));
    i = j + 1;
  }
  if (!parts.empty() && parts.back().empty()) parts.pop_back();  // trailing slash
  const Route* found = nullptr;
  bool path_known = false;
  Params params;
  for (const auto& r : routes) {
    if (r.segments.size() != parts.size()) continue;
    Params p;
    bool match = true;
    for (size_t i = 0; i < parts.size() && match; i++) {
      const auto& s = r.segments[i];
      if (s.size() > 2 && s.front() == '{' && s.back() == '}') {
        p[s.substr(1, s.size() - 2)] = parts[i];
      } else {
        match = s == parts[i];
      }
    }
    if (!match) continue;
    path_known = true;
    if (r.info.method == req.method) {
      found = &r;
      params = std::move(p);
      break;
    }
  }
  auto principal = authenticate(req, res);
  if (!principal) return;
  std::string role = role_name(principal->role);
  if (!found) {
    error_reply(res, path_known ? 405 : 404, path_known ? "method not allowed" : "no such endpoint");
    record(nullptr, req, principal->name, role, "api.unknown", "", req.method + " " + req.path, res.status);
    return;
  }
  Call c{req, res, *principal, params, current(), nullptr, ""};
  std::string service_name;
  if (auto it = c.params.find("service"); it != c.params.end()) {
    service_name = it->second;
    // Unknown and foreign services look the same: 404 (names do not leak).
    c.service = valid_name(service_name) && principal->sees_service(service_name) ? c.catalog->find(service_name)
                                                                                   : nullptr;
    if (c.service == nullptr) {
      error_reply(res, 404, "no such service");
      // The log (for admins) keeps the name asked for; the client learns nothing.
      record(&c, req, principal->name, role, found->info.action, "", "asked for " + service_name.substr(0, 128), 404);
      return;
    }
  }
  static const std::map<std::string, Permission> kPermissions = {{"read", Permission::kRead},
                                                                 {"trigger", Permission::kTrigger},
                                                                 {"restore", Permission::kRestore},
                                                                 {"admin", Permission::kAdmin}};
  if (found->info.permission != "authenticated" && !role_allows(principal->role, kPermissions.at(found->info.permission))) {
    error_reply(res, 403, fmt::format("the {} role may not {}", role, found->info.action));
    record(&c, req, principal->name, role, found->info.action, service_name, "", 403);
    return;
  }
  try {
    found->handler(c);
  } catch (const nlohmann::json::exception& e) {  // a field of the body has the wrong type
    spdlog::info("{} {}: malformed body: {}", req.method, req.path, e.what());
    error_reply(res, 400, "bad request: a field of the JSON body has the wrong type (see docs/api.yaml)");
  } catch (const std::exception& e) {
    spdlog::error("{} {}: {}", req.method, req.path, e.what());
    error_reply(res, 500, "internal error (logged on the server)");
  }
  record(&c, req, principal->name, role, found->info.action, service_name, c.object, res.status);
}

core::Result<std::shared_ptr<storage::Backend>> Server::Impl::backend_for(const std::string& service) {
  auto catalog = current();
  const policy::Service* svc = catalog->find(service);
  if (svc == nullptr) return core::not_found("no such service");
  std::lock_guard lock(backends_mu);
  if (auto it = backends.find(service); it != backends.end()) return it->second;
  storage::OpenOptions o;
  o.ca_file = svc->repository.cacert;
  for (size_t i = 0; i + 1 < options.job_args.size(); i++)
    if (options.job_args[i] == "--cacert" && o.ca_file.empty()) o.ca_file = options.job_args[i + 1];
  ASSIGN_OR_RETURN(auto b, storage::open_backend(svc->repository.location, o));
  std::shared_ptr<storage::Backend> shared(std::move(b));
  backends[service] = shared;
  return shared;
}

core::Result<json> Server::Impl::snapshots_of(const policy::Service& svc, bool fresh) {
  auto asked = std::chrono::steady_clock::now();
  std::shared_ptr<SnapshotList> entry;
  {
    std::lock_guard lock(cache_mu);
    auto& e = snapshot_cache[svc.name];
    if (!e) e = std::make_shared<SnapshotList>();
    entry = e;
    if (!fresh && asked - entry->at < kSnapshotCacheTtl) return entry->list;
  }
  std::lock_guard refresh(entry->refresh);
  {
    std::lock_guard lock(cache_mu);  // another request refreshed it while this one waited
    if (entry->at >= asked) return entry->list;
  }
  ASSIGN_OR_RETURN(std::string out, run_child(child_argv({"snapshots", "--service", svc.name})));
  json j = json::parse(out, nullptr, false);
  if (!j.is_array()) return core::io_error("snapshots of " + svc.name + ": unexpected output");
  std::lock_guard lock(cache_mu);
  entry->at = std::chrono::steady_clock::now();
  entry->list = j;
  return j;
}

// Whether `id` (a full snapshot id) is a snapshot of the call's service: a
// repository may hold several services, and an id must never reach another's.
bool Server::Impl::own_snapshot(Call& c, const std::string& id) {
  if (!is_hex(id, 64)) return false;
  for (bool fresh : {false, true}) {
    auto list = snapshots_of(*c.service, fresh);
    if (!list.ok()) return false;
    for (const auto& s : *list)
      if (s.value("id", "") == id) return true;
  }
  return false;
}

void Server::Impl::start_job(Call& c, JobSpec spec) {
  spec.started_by = c.principal.name;
  std::string id = jobs->start(std::move(spec));
  // The audit entry keeps what the handler named (restore target, snapshot) besides the job.
  c.object = (c.object.empty() ? "" : c.object + ", ") + "job " + id;
  c.res.set_header("Location", "/api/v1/jobs/" + id);
  reply(c.res, 202, {{"job", id}, {"url", "/api/v1/jobs/" + id}});
}

void Server::Impl::build_routes() {
  add("GET", "/api/v1/whoami", "authenticated", "whoami", [](Call& c) {
    reply(c.res, 200,
          {{"name", c.principal.name}, {"role", role_name(c.principal.role)}, {"services", c.principal.services}});
  });

  add("GET", "/api/v1/services", "read", "services.list", [this](Call& c) {
    json out = json::array();
    for (const auto& svc : c.catalog->services) {
      if (!c.principal.sees_service(svc.name)) continue;
      auto st = daemon::service_status(svc, *store, now_s());
      out.push_back(st.ok() ? st->to_json(svc) : json{{"service", svc.name}, {"error", st.status().message()}});
    }
    reply(c.res, 200, {{"services", out}});
  });

  add("GET", "/api/v1/services/{service}", "read", "service.read", [this](Call& c) {
    auto st = daemon::service_status(*c.service, *store, now_s());
    if (!st.ok()) return error_reply(c.res, 500, st.status().message());
    reply(c.res, 200, {{"status", st->to_json(*c.service)}, {"policy", policy::to_json(*c.service)}});
  });

  add("GET", "/api/v1/services/{service}/runs", "read", "runs.list", [this](Call& c) {
    int limit = c.req.has_param("limit") ? std::clamp(std::atoi(c.req.get_param_value("limit").c_str()), 1, 1000) : 50;
    json out = json::array();
    for (auto kind : {daemon::RunKind::kBackup, daemon::RunKind::kDrill, daemon::RunKind::kForget, daemon::RunKind::kPrune}) {
      auto runs = store->recent_runs(c.service->name, kind, limit);
      if (!runs.ok()) return error_reply(c.res, 500, runs.status().message());
      for (const auto& r : *runs)
        out.push_back({{"id", r.id},
                       {"kind", daemon::run_kind_name(r.kind)},
                       {"started_at", daemon::format_rfc3339(r.started_at)},
                       {"finished_at", r.finished_at ? json(daemon::format_rfc3339(*r.finished_at)) : json()},
                       {"result", daemon::run_result_name(r.result)},
                       {"attempt", r.attempt},
                       {"bytes_added", r.bytes_added},
                       {"total_size", r.total_size},
                       {"duration_seconds", r.duration_s},
                       {"snapshot_id", r.snapshot_id},
                       {"error", r.error}});
    }
    std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
      return a["started_at"].get<std::string>() > b["started_at"].get<std::string>();
    });
    if (out.size() > static_cast<size_t>(limit)) out.erase(out.begin() + limit, out.end());
    reply(c.res, 200, {{"runs", out}});
  });

  add("POST", "/api/v1/services/{service}/backups", "trigger", "backup.trigger", [this](Call& c) {
    start_job(c, {"backup", {c.service->name}, {"backup", "--service", c.service->name}, "", c.service->timeout});
  });

  add("GET", "/api/v1/services/{service}/snapshots", "read", "snapshots.list", [this](Call& c) {
    auto list = snapshots_of(*c.service, c.req.has_param("fresh"));
    if (!list.ok()) return error_reply(c.res, 502, list.status().message());
    reply(c.res, 200, {{"snapshots", *list}});
  });

  // Browsing and downloading need the snapshot's own service; the path is
  // checked here, then handed to `cairn ls` / `cairn dump` as one argument.
  auto snapshot_path = [this](Call& c, std::string& path) -> bool {
    const std::string& id = c.params["snapshot"];
    path = c.req.has_param("path") ? c.req.get_param_value("path") : "/";
    c.object = id.substr(0, 16) + ":" + path;
    if (!valid_snapshot_path(path)) {
      error_reply(c.res, 400, "path must be absolute, without '..' or control characters");
      return false;
    }
    if (!own_snapshot(c, id)) {
      error_reply(c.res, 404, "no such snapshot");
      return false;
    }
    return true;
  };
  add("GET", "/api/v1/services/{service}/snapshots/{snapshot}/files", "restore", "snapshot.browse",
      [this, snapshot_path](Call& c) {
        std::string path;
        if (!snapshot_path(c, path)) return;
        auto out = run_child(child_argv({"ls", "--service", c.service->name, "--max-depth", "1", c.params["snapshot"] + ":" + path}));
        if (!out.ok()) return error_reply(c.res, out.status().code() == core::Code::kNotFound ? 404 : 502,
                                          out.status().message());
        json entries = json::array();
        for (size_t i = 0; i < out->size();) {
          size_t j = out->find('\n', i);
          if (j == std::string::npos) j = out->size();
          json e = json::parse(out->substr(i, j - i), nullptr, false);
          if (e.is_object() && e.value("path", "") != path) entries.push_back(e);
          i = j + 1;
        }
        reply(c.res, 200, {{"path", path}, {"entries", entries}});
      });

  add("GET", "/api/v1/services/{service}/snapshots/{snapshot}/download", "restore", "snapshot.download",
      [this, snapshot_path](Call& c) {
        std::string path;
        if (!snapshot_path(c, path)) return;
        core::ProcessOptions po;
        po.new_process_group = true;
        po.env = {"CAIRN_NO_AUDIT=1"};
        auto proc = core::Subprocess::start(child_argv({"dump", "--service", c.service->name, c.params["snapshot"] + ":" + path}), po);
        if (!proc.ok()) return error_reply(c.res, 500, proc.status().message());
        std::shared_ptr<core::Subprocess> p = std::move(*proc);
        // The first bytes decide the answer: an error before any output is a
        // clean 404/502, not a truncated download.
        auto first = std::make_shared<std::string>(65536, '\0');
        auto n = p->read(reinterpret_cast<uint8_t*>(first->data()), first->size());
        if (!n.ok() || *n == 0) {
          core::Status st = p->wait();
          std::string msg = st.ok() ? "empty" : st.message();
          return error_reply(c.res, msg.find("not found") != std::string::npos ? 404 : 502, msg);
        }
        first->resize(*n);
        std::string base = std::filesystem::path(path).filename().string();
        if (base.empty()) base = c.service->name;
        // A tar stream starts with a 512-byte header whose magic is "ustar" at 257.
        bool tar = first->size() >= 263 && first->compare(257, 5, "ustar") == 0;
        std::string filename = std::regex_replace(base, std::regex("[^A-Za-z0-9._-]"), "_") + (tar ? ".tar" : "");
        c.res.set_header("Content-Disposition", "attachment; filename=\"" + filename + "\"");
        c.res.set_chunked_content_provider(
            tar ? "application/x-tar" : "application/octet-stream",
            [p, first](size_t, httplib::DataSink& sink) {
              if (!first->empty()) {
                sink.write(first->data(), first->size());
                first->clear();
                return true;
              }
              uint8_t buf[65536];
              auto r = p->read(buf, sizeof buf);
              if (!r.ok() || *r == 0) {
                core::Status st = p->wait();
                // A failure mid-stream ends the response without its last
                // chunk, so the client sees a broken download, never a short file.
                if (!st.ok()) {
                  spdlog::error("download: {}", st.message());
                  return false;
                }
                sink.done();
                return true;
              }
              return sink.write(reinterpret_cast<const char*>(buf), *r);
            });
      });

  add("DELETE", "/api/v1/services/{service}/snapshots/{snapshot}", "admin", "snapshot.forget", [this](Call& c) {
    const std::string& id = c.params["snapshot"];
    c.object = id;
    if (!own_snapshot(c, id)) return error_reply(c.res, 404, "no such snapshot");
    start_job(c, {"forget", {c.service->name}, {"forget", "--service", c.service->name, id}, "", std::chrono::hours(1)});
  });

  add("POST", "/api/v1/services/{service}/forget", "admin", "retention.apply", [this](Call& c) {
    start_job(c, {"forget", {c.service->name}, {"forget", "--service", c.service->name}, "", std::chrono::hours(1)});
  });

  add("GET", "/api/v1/services/{service}/drills", "read", "drills.list", [this](Call& c) {
    auto list = store->drill_reports(c.service->name, 50);
    if (!list.ok()) return error_reply(c.res, 500, list.status().message());
    json out = json::array();
    for (const auto& d : *list) {
      json r = json::parse(d.report_json, nullptr, false);
      json row = {{"id", d.run_id}, {"passed", d.passed}};
      if (r.is_object())
        for (const char* k : {"started_at", "finished_at", "rto_seconds", "rto_objective_seconds", "rpo_seconds",
                              "snapshot_id", "failure", "point"})
          if (r.contains(k)) row[k] = r[k];
      out.push_back(row);
    }
    reply(c.res, 200, {{"drills", out}});
  });

  add("GET", "/api/v1/services/{service}/drills/{drill}", "read", "drill.read", [this](Call& c) {
    const std::string& id = c.params["drill"];
    c.object = id;
    auto list = store->drill_reports(c.service->name, 1000);
    if (!list.ok()) return error_reply(c.res, 500, list.status().message());
    for (const auto& d : *list) {
      if (std::to_string(d.run_id) != id) continue;
      json r = json::parse(d.report_json, nullptr, false);
      std::string format = c.req.has_param("format") ? c.req.get_param_value("format") : "json";
      if (format == "json") return reply(c.res, 200, r);
      auto report = drill::DrillReport::from_json(r);
      if (format == "html") return c.res.set_content(report.html(), "text/html; charset=utf-8");
      if (format == "md") return c.res.set_content(report.markdown(), "text/markdown; charset=utf-8");
      return error_reply(c.res, 400, "format must be json, md or html");
    }
    error_reply(c.res, 404, "no such drill");
  });

  add("POST", "/api/v1/services/{service}/drills", "trigger", "drill.trigger", [this](Call& c) {
    start_job(c, {"drill", {c.service->name}, {"drill", "run", "--service", c.service->name}, "", c.service->timeout});
  });

  // Restores land in <restore_root>/<target>/<service>: a restorer names the
  // folder, never a path, so it cannot write anywhere else on this host.
  auto restore_args = [this](Call& c, const json& body, std::vector<std::string> services,
                             std::vector<std::string>& args) -> bool {
    std::string target = body.value("target", "");
    if (!valid_name(target)) {
      error_reply(c.res, 400, "target must be a folder name (letters, digits, '.', '_', '-'); restores go below " +
                                  restore_root);
      return false;
    }
    std::string to_time = body.value("to_time", "");
    if (!to_time.empty() && to_time != "latest" && !repo::parse_time(to_time)) {
      error_reply(c.res, 400, "to_time '" + to_time + "' is not a time (RFC 3339, e.g. 2026-11-25T10:31:00Z)");
      return false;
    }
    std::string dir = restore_root + "/" + target;
    for (const auto& s : services)
      if (std::filesystem::exists(dir + "/" + s)) {
        error_reply(c.res, 409, "target " + target + "/" + s + " already exists; pick a new name");
        return false;
      }
    std::string joined;
    for (const auto& s : services) joined += (joined.empty() ? "" : ",") + s;
    args = {"fleet", "restore", "--services", joined, "--target-root", dir};
    if (!to_time.empty() && to_time != "latest") args.insert(args.end(), {"--to-time", to_time});
    c.object = target + (to_time.empty() ? "" : " @ " + to_time);
    return true;
  };
  add("POST", "/api/v1/services/{service}/restores", "restore", "restore.start", [this, restore_args](Call& c) {
    json body = json::parse(c.req.body, nullptr, false);
    if (!body.is_object()) return error_reply(c.res, 400, "the body must be a JSON object");
    std::vector<std::string> args;
    if (!restore_args(c, body, {c.service->name}, args)) return;
    start_job(c, {"restore", {c.service->name}, args, "", std::chrono::hours(24)});
  });

  add("POST", "/api/v1/fleet/restores", "restore", "fleet.restore", [this, restore_args](Call& c) {
    json body = json::parse(c.req.body, nullptr, false);
    if (!body.is_object() || !body.contains("services") || !body["services"].is_array() || body["services"].empty())
      return error_reply(c.res, 400, "the body must name its services: {\"services\": [...], \"target\": ...}");
    std::vector<std::string> services;
    for (const auto& s : body["services"]) {
      std::string name = s.is_string() ? s.get<std::string>() : "";
      if (!valid_name(name) || !c.principal.sees_service(name) || c.catalog->find(name) == nullptr)
        return error_reply(c.res, 404, "no such service: " + name.substr(0, 128));
      services.push_back(name);
    }
    std::vector<std::string> args;
    if (!restore_args(c, body, services, args)) return;
    start_job(c, {"fleet-restore", services, args, "", std::chrono::hours(24)});
  });

  add("GET", "/api/v1/services/{service}/runbook", "read", "runbook.read", [this](Call& c) {
    std::string format = c.req.has_param("format") ? c.req.get_param_value("format") : "md";
    if (format != "md" && format != "html") return error_reply(c.res, 400, "format must be md or html");
    auto argv = child_argv({"runbook", "--service", c.service->name, "--format", format});
    argv.erase(argv.begin() + 1);  // the runbook itself, not --json
    auto out = run_child(argv, true);  // a runbook with warnings (exit 3) still has its text
    if (!out.ok()) return error_reply(c.res, 502, out.status().message());
    c.res.set_content(*out, format == "html" ? "text/html; charset=utf-8" : "text/markdown; charset=utf-8");
  });

  add("GET", "/api/v1/alerts", "read", "alerts.list", [this](Call& c) {
    auto all = store->alerts();
    if (!all.ok()) return error_reply(c.res, 500, all.status().message());
    json out = json::array();
    for (const auto& a : *all) {
      // Daemon-wide alerts (no service) are for those who see every service.
      if (a.service.empty() ? !c.principal.sees_every_service() : !c.principal.sees_service(a.service)) continue;
      out.push_back({{"name", a.name},
                     {"service", a.service},
                     {"severity", a.severity},
                     {"state", a.firing ? "firing" : "resolved"},
                     {"since", daemon::format_rfc3339(a.since)},
                     {"summary", a.summary},
                     {"description", a.description}});
    }
    reply(c.res, 200, {{"alerts", out}});
  });

  auto job_visible = [](const Call& c, const JobView& v) {
    for (const auto& s : v.spec.services)
      if (!c.principal.sees_service(s)) return false;
    return true;
  };
  add("GET", "/api/v1/jobs", "read", "jobs.list", [this, job_visible](Call& c) {
    json out = json::array();
    for (const auto& v : jobs->list())
      if (job_visible(c, v)) out.push_back(v.to_json());
    reply(c.res, 200, {{"jobs", out}});
  });
  add("GET", "/api/v1/jobs/{job}", "read", "job.read", [this, job_visible](Call& c) {
    c.object = c.params["job"];
    auto v = jobs->get(c.params["job"]);
    if (!v || !job_visible(c, *v)) return error_reply(c.res, 404, "no such job");
    reply(c.res, 200, v->to_json());
  });

  add("GET", "/api/v1/audit", "admin", "audit.read", [this](Call& c) {
    int limit = c.req.has_param("limit") ? std::clamp(std::atoi(c.req.get_param_value("limit").c_str()), 1, 10000) : 200;
    std::string service = c.req.has_param("service") ? c.req.get_param_value("service") : "";
    // An admin of some services reads only their entries.
    if (!c.principal.sees_every_service() && (service.empty() || !c.principal.sees_service(service)))
      return error_reply(c.res, 404, "name one of your services (?service=...)");
    auto entries = audit->tail(static_cast<size_t>(limit), service);
    if (!entries.ok()) return error_reply(c.res, 500, entries.status().message());
    reply(c.res, 200, {{"entries", *entries}});
  });
}

std::vector<RouteInfo> api_routes() {
  Server::Impl impl;
  impl.build_routes();
  std::vector<RouteInfo> out;
  for (const auto& r : impl.routes) out.push_back(r.info);
  return out;
}

core::Result<std::unique_ptr<Server>> Server::create(ServerOptions options, policy::Catalog catalog) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const auto& sv = catalog.server;
  std::string listen = impl->options.listen.empty() ? sv.listen : impl->options.listen;
  std::string host = listen.substr(0, listen.rfind(':'));
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  if (impl->options.plain_http) {
    if (!loopback(host))
      return core::invalid_argument("plain HTTP only on a loopback address (127.0.0.1, ::1), not " + host +
                                    ": configure server.tls for anything else");
  } else if (sv.tls_cert.empty()) {
    return core::invalid_argument(catalog.path + ": server.tls.cert and server.tls.key are required for HTTPS "
                                                 "(or --insecure-plain-http on a loopback address)");
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(catalog.daemon.state).parent_path(), ec);
  ASSIGN_OR_RETURN(auto store, daemon::StateStore::open(catalog.daemon.state));
  impl->store = std::make_unique<daemon::StateStore>(std::move(store));
  impl->tokens = std::make_unique<TokenService>(*impl->store);
  impl->audit = std::make_unique<AuditLog>(sv.audit_log_path(catalog.daemon));
  impl->restore_root = sv.restore_root_path(catalog.daemon);
  Impl* raw = impl.get();
  impl->jobs = std::make_unique<JobRunner>(impl->child_argv({}), impl->store.get(), [raw](const JobView& v) {
    std::lock_guard lock(raw->cache_mu);  // a backup or forget changed the snapshot lists
    for (const auto& s : v.spec.services) raw->snapshot_cache.erase(s);
  });

  if (impl->options.plain_http) {
    impl->http = std::make_unique<httplib::Server>();
  } else {
    std::string cert = sv.tls_cert, key = sv.tls_key;
    auto ssl = std::make_unique<httplib::SSLServer>([cert, key](SSL_CTX& ctx) {
      SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
      SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
      return SSL_CTX_use_certificate_chain_file(&ctx, cert.c_str()) == 1 &&
             SSL_CTX_use_PrivateKey_file(&ctx, key.c_str(), SSL_FILETYPE_PEM) == 1 &&
             SSL_CTX_check_private_key(&ctx) == 1;
    });
    if (!ssl->is_valid())
      return core::invalid_argument(fmt::format("server.tls: cannot load the certificate {} with the key {}", cert, key));
    impl->http = std::move(ssl);
  }
  auto& http = *impl->http;
  http.set_payload_max_length(64u << 20);  // the repository endpoint's packs; the API checks its own limit
  http.set_read_timeout(10, 0);
  http.set_write_timeout(30, 0);
  http.set_keep_alive_timeout(5);
  http.new_task_queue = [] { return new httplib::ThreadPool(64); };
  Impl* ip = impl.get();
  ip->build_routes();
  // The repository endpoint first: its routes are more specific than the
  // API's catch-all below.
  RepoEndpointHooks hooks;
  hooks.authenticate = [ip](const httplib::Request& req) -> std::optional<Principal> {
    httplib::Response ignored;  // the endpoint answers 401 itself
    return ip->authenticate(req, ignored);
  };
  hooks.backend_for = [ip](const std::string& service) { return ip->backend_for(service); };
  hooks.audit = [ip](const Principal& p, const std::string& action, const std::string& service,
                     const std::string& object, bool ok) {
    AuditEntry e{p.name, role_name(p.role), action, service, object, ok ? "ok" : "denied or failed", ""};
    if (auto st = ip->audit->append(e); !st.ok()) spdlog::error("audit log: {}", st.message());
  };
  register_repo_endpoint(http, hooks);
  auto api = [ip](const httplib::Request& req, httplib::Response& res) {
    if (req.body.size() > kMaxApiBody) {
      error_reply(res, 413, "request body too large");
      // Refused calls are audited too.
      ip->record(nullptr, req, "anonymous", "", "api.too_large", "", req.method + " " + req.path, 413);
      return;
    }
    ip->dispatch(req, res);
  };
  for (const char* pattern : {"/api/v1/.*"}) {
    http.Get(pattern, api);
    http.Post(pattern, api);
    http.Delete(pattern, api);
    http.Put(pattern, api);
  }
  http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
  std::string web = sv.web;
  if (web.empty()) {
    // Installed layout (<prefix>/share/cairn/web) or the source tree's web/.
    auto exe = std::filesystem::path(ip->options.cairn_exe).parent_path();
    for (auto candidate : {exe / "../share/cairn/web", exe / "../../web", exe / "../web"})
      if (std::filesystem::exists(candidate / "index.html")) {
        web = std::filesystem::weakly_canonical(candidate).string();
        break;
      }
  }
  if (!web.empty() && !http.set_mount_point("/", web))
    return core::invalid_argument("server.web: " + web + " is not a folder");
  // Errors of the HTTP layer itself (400 for a POST without
  // Content-Length, 413 over the payload limit, 404 outside the API) get the
  // API's {"error": ...} shape instead of an empty body.
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty() && !res.has_header("Content-Type"))
      error_reply(res, res.status, fmt::format("HTTP {}: the request was refused before it reached the API", res.status));
  });
  http.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  });
  impl->catalog = std::make_shared<const policy::Catalog>(std::move(catalog));
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() {
  stop();
  if (impl_->daemon_thread.joinable()) impl_->daemon_thread.join();
}

int Server::port() const { return impl_->port; }

core::Status Server::run() {
  auto catalog = impl_->current();
  std::string listen = impl_->options.listen.empty() ? catalog->server.listen : impl_->options.listen;
  auto colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  int port = std::atoi(listen.substr(colon + 1).c_str());
  if (host.empty()) host = "0.0.0.0";
  int bound = port == 0 ? impl_->http->bind_to_any_port(host) : (impl_->http->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) return core::io_error("server: cannot listen on " + listen);
  impl_->port = bound;
  if (impl_->options.with_daemon) {
    daemon::DaemonOptions d;
    d.config_path = impl_->options.config_path;
    d.cairn_exe = impl_->options.cairn_exe;
    d.job_args = impl_->options.job_args;
    ASSIGN_OR_RETURN(impl_->daemon, daemon::Daemon::create(d, *catalog));
    impl_->daemon_thread = std::thread([this] {
      if (auto st = impl_->daemon->run(); !st.ok()) spdlog::error("daemon: {}", st.message());
    });
  }
  spdlog::info("cairn server listening on {}://{}:{} ({} services, audit log {})",
               impl_->options.plain_http ? "http" : "https", host, bound, catalog->services.size(),
               impl_->audit->path());
  bool ok = impl_->http->listen_after_bind();
  // Drained: no request is running any more; now the jobs.
  impl_->jobs->cancel_all();
  if (impl_->daemon) {
    impl_->daemon->stop();
    if (impl_->daemon_thread.joinable()) impl_->daemon_thread.join();
  }
  return ok ? core::ok_status() : core::io_error("server: listening on " + listen + " failed");
}

void Server::stop() {
  if (impl_->http) impl_->http->stop();
}

void Server::reload() {
  auto loaded = policy::load_catalog(impl_->options.config_path);
  if (!loaded.ok()) {
    for (const auto& d : loaded.diagnostics) spdlog::error("reload: {}", d.to_string());
    return;
  }
  {
    std::lock_guard lock(impl_->mu);
    impl_->catalog = std::make_shared<const policy::Catalog>(std::move(loaded.catalog));
  }
  {
    std::lock_guard lock(impl_->backends_mu);  // a service may have moved
    impl_->backends.clear();
  }
  if (impl_->daemon) impl_->daemon->reload();
  spdlog::info("policy reloaded");
}

}  // namespace cairn::server
