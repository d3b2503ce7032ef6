#include "server/repo_endpoint.h"

#include <algorithm>
#include <charconv>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "crypto/crypto.h"

namespace cairn::server {

namespace {

using storage::FileType;
using storage::Handle;

enum class Op { kLoad, kStat, kSave, kRemove, kList };

const char* action_of(Op op) {
  switch (op) {
    case Op::kLoad:
      return "repo.load";
    case Op::kStat:
      return "repo.stat";
    case Op::kSave:
      return "repo.save";
    case Op::kRemove:
      return "repo.remove";
    case Op::kList:
      return "repo.list";
  }
  return "repo.?";
}

std::optional<FileType> parse_type(const std::string& s) {
  for (FileType t : {FileType::kKey, FileType::kPack, FileType::kIndex, FileType::kSnapshot,
                     FileType::kLock, FileType::kMaintenance, FileType::kWal}) {
    if (s == storage::type_dir(t)) return t;
  }
  return std::nullopt;
}

// Object names are 64 lowercase hex digits (SHA-256 or HMAC-SHA-256 ids):
// nothing else can reach the backend, so no path tricks either.
bool valid_name(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Whether a type's objects are named by the SHA-256 of their bytes; the
// endpoint checks that on save, so nobody can plant bytes under a name that
// another writer's object will have (it would then be taken as stored).
bool content_addressed(FileType t) { return t != FileType::kConfig && t != FileType::kWal; }

enum class Verdict { kAllow, kForbid };

// The permission matrix (docs/repo-endpoint.md). Admins (kRepoRead) may do
// everything. Agents (kRepoAppend only) add objects, open the repository
// (config, keys), look for locks, and remove locks they created themselves
// (checked separately). Everyone else has no business here.
Verdict decide(Role role, Op op, FileType type) {
  if (role_allows(role, Permission::kRepoRead)) return Verdict::kAllow;
  if (!role_allows(role, Permission::kRepoAppend)) return Verdict::kForbid;
  switch (op) {
    case Op::kSave:
      return type == FileType::kConfig || type == FileType::kKey ? Verdict::kForbid
                                                                 : Verdict::kAllow;
    case Op::kLoad:
    case Op::kStat:
      return type == FileType::kConfig || type == FileType::kKey ? Verdict::kAllow
                                                                 : Verdict::kForbid;
    case Op::kList:
      return type == FileType::kKey || type == FileType::kLock ? Verdict::kAllow : Verdict::kForbid;
    case Op::kRemove:
      return type == FileType::kLock ? Verdict::kAllow : Verdict::kForbid;
  }
  return Verdict::kForbid;
}

int http_status_of(const core::Status& st) {
  switch (st.code()) {
    case core::Code::kNotFound:
      return 404;
    case core::Code::kAlreadyExists:
      return 409;
    case core::Code::kInvalidArgument:
      return 400;
    case core::Code::kPermissionDenied:
      return 403;
    case core::Code::kTransient:
      return 503;
    default:
      return 500;
  }
}

void answer(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(nlohmann::json{{"error", message}}.dump() + "\n", "application/json");
}

// Locks an agent token stored, so it can remove its own (lock refresh and
// release) but not another writer's. In memory: after a server restart an
// agent's remove is refused, and its lock goes stale on its own.
class LockOwners {
 public:
  void add(const std::string& token, const std::string& service, const std::string& name) {
    std::lock_guard lock(mu_);
    if (owners_.insert(key(token, service, name)).second)
      order_.push_back(key(token, service, name));
    while (order_.size() > kMaxEntries) {
      owners_.erase(order_.front());
      order_.pop_front();
    }
  }
  bool owns(const std::string& token, const std::string& service, const std::string& name) {
    std::lock_guard lock(mu_);
    return owners_.count(key(token, service, name)) != 0;
  }
  void erase(const std::string& token, const std::string& service, const std::string& name) {
    std::lock_guard lock(mu_);
    owners_.erase(key(token, service, name));  // its order_ slot ages out harmlessly
  }

 private:
  static constexpr size_t kMaxEntries = 100000;
  static std::string key(const std::string& token, const std::string& service,
                         const std::string& name) {
    return token + '\0' + service + '\0' + name;
  }
  std::mutex mu_;
  std::set<std::string> owners_;
  std::deque<std::string> order_;
};

struct Endpoint {
  RepoEndpointHooks hooks;
  LockOwners lock_owners;

  // Parses a single "bytes=a-b" / "bytes=a-" range against `size`; nullopt
  // when absent. Sets `bad` when the range cannot be served (416).
  static std::optional<std::pair<uint64_t, uint64_t>> parse_range(const httplib::Request& req,
                                                                  uint64_t size, bool* bad) {
    *bad = false;
    if (!req.has_header("Range")) return std::nullopt;
    std::string v = req.get_header_value("Range");
    auto fail = [&] {
      *bad = true;
      return std::nullopt;
    };
    if (v.rfind("bytes=", 0) != 0) return fail();
    v = v.substr(6);
    size_t dash = v.find('-');
    if (dash == std::string::npos || dash == 0 || v.find(',') != std::string::npos) return fail();
    uint64_t first = 0, last = 0;
    auto p = std::from_chars(v.data(), v.data() + dash, first);
    if (p.ec != std::errc() || p.ptr != v.data() + dash) return fail();
    if (dash + 1 == v.size()) {
      if (size == 0) return fail();
      last = size - 1;
    } else {
      auto q = std::from_chars(v.data() + dash + 1, v.data() + v.size(), last);
      if (q.ec != std::errc() || q.ptr != v.data() + v.size()) return fail();
    }
    if (last < first || last >= size) return fail();
    return std::make_pair(first, last - first + 1);
  }

  // Common part of every request: who asks, may they, and which backend.
  // Returns nullptr after answering the request itself.
  std::shared_ptr<storage::Backend> admit(const httplib::Request& req, httplib::Response& res,
                                          const std::string& service, Op op, const Handle& h,
                                          std::optional<Principal>* who) {
    *who = hooks.authenticate(req);
    if (!*who) {
      res.set_header("WWW-Authenticate", "Bearer");
      answer(res, 401, "authentication required");
      return nullptr;
    }
    const Principal& p = **who;
    const std::string object =
        op == Op::kList ? std::string(storage::type_dir(h.type)) + "/" : h.to_string();
    // Out of scope and unknown look the same (404): names must not leak.
    if (!p.sees_service(service)) {
      hooks.audit(p, action_of(op), service, object, false);
      answer(res, 404, "no repository for service " + service);
      return nullptr;
    }
    auto backend = hooks.backend_for(service);
    if (!backend.ok()) {
      hooks.audit(p, action_of(op), service, object, false);
      if (backend.status().code() == core::Code::kNotFound) {
        answer(res, 404, "no repository for service " + service);
      } else {
        answer(res, 500, "repository of service " + service + " is unavailable");
      }
      return nullptr;
    }
    if (decide(p.role, op, h.type) == Verdict::kForbid) {
      hooks.audit(p, action_of(op), service, object, false);
      answer(res, 403,
             std::string("role ") + role_name(p.role) + " may not " + (action_of(op) + 5) + " " +
                 object);
      return nullptr;
    }
    return *backend;
  }

  void finish(const Principal& p, httplib::Response& res, Op op, const std::string& service,
              const std::string& object, const core::Status& st) {
    hooks.audit(p, action_of(op), service, object, st.ok());
    if (!st.ok()) answer(res, http_status_of(st), object + ": " + st.message());
  }

  void get(const httplib::Request& req, httplib::Response& res, const std::string& service,
           const Handle& h) {
    const Op op = req.method == "HEAD" ? Op::kStat : Op::kLoad;
    std::optional<Principal> who;
    auto backend = admit(req, res, service, op, h, &who);
    if (!backend) return;
    auto info = backend->stat(h);
    if (!info.ok()) return finish(*who, res, op, service, h.to_string(), info.status());
    bool bad_range = false;
    auto range = parse_range(req, info->size, &bad_range);
    if (bad_range) {
      res.set_header("Content-Range", "bytes */" + std::to_string(info->size));
      return finish(*who, res, op, service, h.to_string(),
                    core::invalid_argument("range not satisfiable"));
    }
    hooks.audit(*who, action_of(op), service, h.to_string(), true);
    if (op == Op::kStat) {
      // httplib sends no body for HEAD; the length is the object's size.
      res.status = 200;
      res.set_header("Content-Length", std::to_string(info->size));
      res.set_header("Accept-Ranges", "bytes");
      return;
    }
    if (info->size == 0) {
      res.status = 200;
      res.set_content("", "application/octet-stream");
      return;
    }
    // Streamed in slices: a 16 MiB pack is never held twice. httplib applies
    // the (already validated) Range to the provider's offsets itself.
    (void)range;
    res.set_content_provider(info->size, "application/octet-stream",
                             [backend, h](size_t offset, size_t length, httplib::DataSink& sink) {
                               constexpr size_t kSlice = 1u << 20;
                               size_t n = std::min(length, kSlice);
                               auto bytes = backend->load(h, offset, n);
                               if (!bytes.ok() || bytes->size() != n)
                                 return false;  // aborts the connection
                               return sink.write(reinterpret_cast<const char*>(bytes->data()),
                                                 bytes->size());
                             });
  }

  void list(const httplib::Request& req, httplib::Response& res, const std::string& service,
            FileType type) {
    std::optional<Principal> who;
    Handle h{type, ""};
    auto backend = admit(req, res, service, Op::kList, h, &who);
    if (!backend) return;
    nlohmann::json out = nlohmann::json::array();
    core::Status st = backend->list(type, [&](const storage::FileInfo& fi) {
      out.push_back({{"name", fi.name}, {"size", fi.size}});
    });
    finish(*who, res, Op::kList, service, std::string(storage::type_dir(type)) + "/", st);
    if (st.ok()) {
      res.status = 200;
      res.set_content(out.dump(), "application/json");
    }
  }

  void put(const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read,
           const std::string& service, const Handle& h) {
    std::optional<Principal> who;
    auto backend = admit(req, res, service, Op::kSave, h, &who);
    if (!backend) {
      // Read the refused body to its end: left unread on a keep-alive
      // connection it would be parsed as the client's next request (a 400
      // for a GET that follows a refused PUT). httplib's payload limit
      // bounds it.
      read([](const char*, size_t) { return true; });
      return;
    }
    if (req.has_header("Content-Length")) {
      uint64_t declared = 0;
      const std::string v = req.get_header_value("Content-Length");
      auto r = std::from_chars(v.data(), v.data() + v.size(), declared);
      if (r.ec != std::errc() || declared > kMaxRepoObjectSize) {
        hooks.audit(*who, "repo.save", service, h.to_string(), false);
        return answer(res, 413,
                      "object larger than " + std::to_string(kMaxRepoObjectSize) + " bytes");
      }
    }
    core::Bytes body;
    bool too_big = false;
    read([&](const char* data, size_t n) {
      if (body.size() + n > kMaxRepoObjectSize) {
        too_big = true;
        return false;
      }
      body.insert(body.end(), reinterpret_cast<const uint8_t*>(data),
                  reinterpret_cast<const uint8_t*>(data) + n);
      return true;
    });
    if (too_big) {
      hooks.audit(*who, "repo.save", service, h.to_string(), false);
      return answer(res, 413,
                    "object larger than " + std::to_string(kMaxRepoObjectSize) + " bytes");
    }
    // Only agents: admins' tools (repair, tests) may store any bytes.
    if (!role_allows(who->role, Permission::kRepoRead) && content_addressed(h.type) &&
        core::hex_encode(crypto::sha256(body)) != h.name) {
      // A taken name is still a conflict (409), whatever the bytes.
      if (backend->stat(h).ok()) {
        return finish(*who, res, Op::kSave, service, h.to_string(),
                      core::already_exists("object already exists"));
      }
      return finish(*who, res, Op::kSave, service, h.to_string(),
                    core::invalid_argument("content does not match its name (SHA-256)"));
    }
    core::Status st = backend->save(h, body);
    if (st.ok() && h.type == FileType::kLock) lock_owners.add(who->token_id, service, h.name);
    finish(*who, res, Op::kSave, service, h.to_string(), st);
    if (st.ok()) res.status = 201;
  }

  void remove(const httplib::Request& req, httplib::Response& res, const std::string& service,
              const Handle& h) {
    std::optional<Principal> who;
    auto backend = admit(req, res, service, Op::kRemove, h, &who);
    if (!backend) return;
    if (!role_allows(who->role, Permission::kRepoRead) &&
        !lock_owners.owns(who->token_id, service, h.name)) {
      hooks.audit(*who, "repo.remove", service, h.to_string(), false);
      return answer(res, 403, "an agent may remove only locks it created: " + h.to_string());
    }
    core::Status st = backend->remove(h);
    if (st.ok() && h.type == FileType::kLock) lock_owners.erase(who->token_id, service, h.name);
    finish(*who, res, Op::kRemove, service, h.to_string(), st);
    if (st.ok()) res.status = 204;
  }
};

constexpr const char* kConfigRoute = R"(/api/v1/repo/([A-Za-z0-9][A-Za-z0-9._-]{0,127})/config)";
constexpr const char* kObjectRoute =
    R"(/api/v1/repo/([A-Za-z0-9][A-Za-z0-9._-]{0,127})/([a-z]+)/([^/]*))";

// Resolves the captured type and name; answers 400/404 itself when they are
// not a valid object. `list` is set for a request of the folder itself.
bool object_of(const httplib::Request& req, httplib::Response& res, Handle* h, bool* list) {
  auto type = parse_type(req.matches[2]);
  if (!type) {
    answer(res, 404, "no such object type '" + std::string(req.matches[2]) + "'");
    return false;
  }
  h->type = *type;
  h->name = req.matches[3];
  *list = h->name.empty();
  if (!*list && !valid_name(h->name)) {
    answer(res, 400, "invalid object name (64 lowercase hex digits)");
    return false;
  }
  return true;
}

}  // namespace

void register_repo_endpoint(httplib::Server& server, RepoEndpointHooks hooks) {
  auto ep = std::make_shared<Endpoint>();
  ep->hooks = std::move(hooks);
  // Missing hooks fail closed: nobody authenticates, no service exists.
  if (!ep->hooks.authenticate)
    ep->hooks.authenticate = [](const httplib::Request&) { return std::optional<Principal>(); };
  if (!ep->hooks.backend_for) {
    ep->hooks.backend_for =
        [](const std::string& s) -> core::Result<std::shared_ptr<storage::Backend>> {
      return core::not_found("no service " + s);
    };
  }
  if (!ep->hooks.audit) {
    ep->hooks.audit = [](const Principal&, const std::string&, const std::string&,
                         const std::string&, bool) {};
  }
  const Handle config{FileType::kConfig, "config"};

  server.Get(kConfigRoute, [ep, config](const httplib::Request& req, httplib::Response& res) {
    ep->get(req, res, req.matches[1], config);
  });
  server.Put(kConfigRoute, [ep, config](const httplib::Request& req, httplib::Response& res,
                                        const httplib::ContentReader& read) {
    ep->put(req, res, read, req.matches[1], config);
  });
  server.Get(kObjectRoute, [ep](const httplib::Request& req, httplib::Response& res) {
    Handle h;
    bool list = false;
    if (!object_of(req, res, &h, &list)) return;
    if (list) {
      if (req.method == "HEAD") return answer(res, 405, "HEAD of a folder");
      return ep->list(req, res, req.matches[1], h.type);
    }
    ep->get(req, res, req.matches[1], h);
  });
  server.Put(kObjectRoute, [ep](const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& read) {
    Handle h;
    bool list = false;
    if (!object_of(req, res, &h, &list)) return;
    if (list) return answer(res, 405, "PUT needs an object name");
    ep->put(req, res, read, req.matches[1], h);
  });
  server.Delete(kObjectRoute, [ep](const httplib::Request& req, httplib::Response& res) {
    Handle h;
    bool list = false;
    if (!object_of(req, res, &h, &list)) return;
    if (list) return answer(res, 405, "DELETE needs an object name");
    ep->remove(req, res, req.matches[1], h);
  });
}

}  // namespace cairn::server
