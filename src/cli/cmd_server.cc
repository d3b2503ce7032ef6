// cairn server | token | audit: the HTTPS API and its access control
// (docs/security.md, docs/api.yaml).
#include <fmt/format.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "cli/context.h"
#include "daemon/alerts.h"
#include "daemon/state_store.h"
#include "policy/duration.h"
#include "server/audit_log.h"
#include "server/server.h"
#include "server/tokens.h"

namespace cairn::cli {

namespace {

daemon::Time now_s() { return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()); }

std::string cli_principal() {
  const passwd* pw = getpwuid(geteuid());
  return "cli:" + (pw != nullptr ? std::string(pw->pw_name) : std::to_string(geteuid()));
}

struct ServerArgs {
  std::string listen;
  bool plain_http = false;
  bool with_daemon = false;
};

core::Status run_server(Context& ctx, const ServerArgs& a) {
  sigset_t set = take_termination_signals(ctx);
  std::string path = std::filesystem::absolute(policy::find_config(ctx.config)).string();
  ctx.config = path;
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  server::ServerOptions opt;
  opt.config_path = path;
  opt.cairn_exe = self_exe();
  opt.job_args = job_args(ctx);
  opt.listen = a.listen;
  opt.plain_http = a.plain_http;
  opt.with_daemon = a.with_daemon;
  if (a.plain_http) spdlog::warn("plain HTTP: tokens and data cross the loopback interface unencrypted");
  ASSIGN_OR_RETURN(auto srv, server::Server::create(opt, std::move(catalog)));
  server::Server* sp = srv.get();
  return run_until_signalled(
      set, [sp] { return sp->run(); }, [sp] { sp->stop(); }, [sp] { sp->reload(); });
}

// The token commands work on the state database named by the policy.
core::Result<daemon::StateStore> open_state(Context& ctx) {
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(catalog.daemon.state).parent_path(), ec);
  return daemon::StateStore::open(catalog.daemon.state);
}

std::string when(const std::optional<daemon::Time>& t) { return t ? daemon::format_rfc3339(*t) : "-"; }

nlohmann::json token_json(const daemon::TokenRecord& t) {
  auto opt = [](const std::optional<daemon::Time>& v) {
    return v ? nlohmann::json(daemon::format_rfc3339(*v)) : nlohmann::json();
  };
  return {{"id", t.id},
          {"name", t.name},
          {"role", t.role},
          {"services", t.services},
          {"created_at", daemon::format_rfc3339(t.created_at)},
          {"created_by", t.created_by},
          {"expires_at", opt(t.expires_at)},
          {"last_used_at", opt(t.last_used_at)},
          {"revoked_at", opt(t.revoked_at)}};
}

struct TokenArgs {
  std::string name, role = "viewer", expires, id;
  std::vector<std::string> services;
};

core::Status run_token_create(Context& ctx, const TokenArgs& a) {
  auto role = server::parse_role(a.role);
  if (!role) return core::invalid_argument("--role must be viewer, operator, restorer, admin or agent");
  server::NewToken req;
  req.name = a.name;
  req.role = *role;
  req.services = a.services;
  req.created_by = cli_principal();
  if (!a.expires.empty()) {
    ASSIGN_OR_RETURN(auto d, policy::parse_duration(a.expires));
    req.expires_in = d;
  }
  if (req.role == server::Role::kAgent && (req.services.size() != 1 || req.services[0] == "*"))
    return core::invalid_argument("an agent token belongs to exactly one service (--services NAME)");
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  for (const auto& s : req.services)
    if (s != "*") TRY(find_service(catalog, s).status());
  ASSIGN_OR_RETURN(auto store, open_state(ctx));
  server::TokenService tokens(store);
  ASSIGN_OR_RETURN(auto created, tokens.create(req, now_s()));
  if (ctx.json) {
    auto j = token_json(created.record);
    j["token"] = created.token;
    ctx.print_json(j);
  } else {
    std::cout << created.token << "\n";
    std::cerr << fmt::format("token {} ({}, {} for {}) created{}; it is shown only now: store it in a secret store\n",
                             created.record.id, created.record.name, created.record.role,
                             fmt::join(created.record.services, ","),
                             created.record.expires_at ? ", expires " + when(created.record.expires_at) : "");
  }
  return {};
}

core::Status run_token_list(Context& ctx) {
  ASSIGN_OR_RETURN(auto store, open_state(ctx));
  server::TokenService tokens(store);
  ASSIGN_OR_RETURN(auto list, tokens.list());
  if (ctx.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& t : list) out.push_back(token_json(t));
    ctx.print_json(out);
    return {};
  }
  std::cout << fmt::format("{:<17} {:<20} {:<9} {:<20} {:<21} {:<21} {}\n", "ID", "NAME", "ROLE", "SERVICES", "EXPIRES",
                           "LAST USED", "STATE");
  auto now = now_s();
  for (const auto& t : list) {
    std::string state = t.revoked_at ? "revoked" : (t.expires_at && *t.expires_at <= now ? "expired" : "active");
    std::cout << fmt::format("{:<17} {:<20} {:<9} {:<20} {:<21} {:<21} {}\n", t.id, t.name, t.role,
                             fmt::format("{}", fmt::join(t.services, ",")), when(t.expires_at), when(t.last_used_at),
                             state);
  }
  return {};
}

core::Status run_token_revoke(Context& ctx, const std::string& id) {
  ASSIGN_OR_RETURN(auto store, open_state(ctx));
  server::TokenService tokens(store);
  TRY(tokens.revoke(id, now_s()));
  if (!ctx.quiet && !ctx.json) std::cout << "revoked " << id << "\n";
  if (ctx.json) ctx.print_json({{"revoked", id}});
  return {};
}

core::Result<std::string> audit_path(Context& ctx, const std::string& flag) {
  if (!flag.empty()) return flag;
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  return catalog.server.audit_log_path(catalog.daemon);
}

core::Status run_audit_verify(Context& ctx, const std::string& file) {
  ASSIGN_OR_RETURN(std::string path, audit_path(ctx, file));
  ASSIGN_OR_RETURN(auto v, server::verify_audit_log(path));
  if (ctx.json) {
    nlohmann::json problems = nlohmann::json::array();
    for (const auto& p : v.problems) problems.push_back({{"line", p.line}, {"message", p.message}});
    ctx.print_json({{"path", path}, {"entries", v.entries}, {"ok", v.ok()}, {"problems", problems}});
  } else {
    for (const auto& p : v.problems)
      std::cerr << (p.line > 0 ? fmt::format("{}:{}: {}\n", path, p.line, p.message) : fmt::format("{}: {}\n", path, p.message));
    if (v.ok() && !ctx.quiet) std::cout << fmt::format("{}: {} entries, chain intact\n", path, v.entries);
  }
  if (!v.ok()) {
    ctx.exit_code = kExitFailure;
    if (!ctx.json) std::cerr << fmt::format("cairn: audit log {} has been tampered with ({} problems)\n", path, v.problems.size());
  }
  return {};
}

core::Status run_audit_show(Context& ctx, const std::string& file, const std::string& service, size_t limit) {
  ASSIGN_OR_RETURN(std::string path, audit_path(ctx, file));
  server::AuditLog log(path);
  ASSIGN_OR_RETURN(auto entries, log.tail(limit, service));
  if (ctx.json) {
    ctx.print_json(entries);
    return {};
  }
  for (const auto& e : entries)
    std::cout << fmt::format("{} {:<5} {:<20} {:<9} {:<20} {:<14} {} {}\n", e.value("time", ""), e.value("seq", 0),
                             e.value("principal", ""), e.value("role", ""), e.value("action", ""),
                             e.value("service", ""), e.value("object", ""), e.value("result", ""));
  return {};
}

}  // namespace

void add_server(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<ServerArgs>();
  auto* cmd = app.add_subcommand("server", "HTTPS API, repository endpoint for agents and dashboard (docs/security.md)");
  cmd->add_option("--listen", a->listen, "host:port (default: the policy's server.listen, 127.0.0.1:8443)");
  cmd->add_flag("--insecure-plain-http", a->plain_http, "serve plain HTTP; only on a loopback address");
  cmd->add_flag("--with-daemon", a->with_daemon, "also run the scheduler (cairn daemon) in this process");
  cmd->callback([&ctx, a] { ctx.run([&] { return run_server(ctx, *a); }); });
}

void add_token(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("token", "API tokens of cairn server: create, list, revoke");
  cmd->require_subcommand(1);
  auto a = std::make_shared<TokenArgs>();
  auto* create = cmd->add_subcommand("create", "make a token (printed once) for a role and services");
  create->add_option("--name", a->name, "who or what holds it (person, agent host)")->required();
  create->add_option("--role", a->role, "viewer, operator, restorer, admin or agent (default viewer)");
  create->add_option("--services", a->services, "services it may see: a,b or '*'")->delimiter(',')->required();
  create->add_option("--expires", a->expires, "lifetime such as 30d or 12h (default: never)");
  create->callback([&ctx, a] { ctx.run([&] { return run_token_create(ctx, *a); }); });
  auto* list = cmd->add_subcommand("list", "every token: role, services, expiry, last use");
  list->callback([&ctx] { ctx.run([&] { return run_token_list(ctx); }); });
  auto* revoke = cmd->add_subcommand("revoke", "revoke a token by id, or every token of a name");
  revoke->add_option("id", a->id, "token id or name")->required();
  revoke->callback([&ctx, a] { ctx.run([&] { return run_token_revoke(ctx, a->id); }); });
}

void add_audit(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("audit", "the hash-chained audit log: verify, show");
  cmd->require_subcommand(1);
  struct Args {
    std::string file, service;
    size_t limit = 50;
  };
  auto a = std::make_shared<Args>();
  auto* verify = cmd->add_subcommand("verify", "check every entry's hash and the chain; exit 1 names tampered lines");
  verify->add_option("--file", a->file, "audit log (default: the policy's server.audit_log)");
  verify->callback([&ctx, a] { ctx.run([&] { return run_audit_verify(ctx, a->file); }); });
  auto* show = cmd->add_subcommand("show", "the newest entries");
  show->add_option("--file", a->file, "audit log (default: the policy's server.audit_log)");
  show->add_option("--service", a->service, "only this service");
  show->add_option("--limit", a->limit, "at most this many (default 50)");
  show->callback([&ctx, a] { ctx.run([&] { return run_audit_show(ctx, a->file, a->service, a->limit); }); });
}

// Every CLI action that reads or changes data goes into the audit log when
// the policy has a server block (docs/security.md lists what is left out).
void audit_cli_action(const CLI::App& app, const Context& ctx) {
  std::vector<std::string> path;
  const CLI::App* leaf = &app;
  for (;;) {
    auto subs = leaf->get_subcommands();
    if (subs.empty()) break;
    leaf = subs.front();
    path.push_back(leaf->get_name());
  }
  if (path.empty()) return;
  static const std::vector<std::string> kNotAudited = {"policy", "service", "runbook", "daemon", "audit",
                                                       "wal-push", "wal-get", "server", "help"};
  if (std::find(kNotAudited.begin(), kNotAudited.end(), path.front()) != kNotAudited.end()) return;
  if (path.front() == "token" && path.size() > 1 && path[1] == "list") return;
  std::string config = policy::find_config(ctx.config);
  if (!std::filesystem::exists(config)) return;
  auto loaded = policy::load_catalog(config);
  if (!loaded.ok() || !loaded.catalog.server.configured) return;
  server::AuditEntry e;
  if (getenv("CAIRN_NO_AUDIT") != nullptr) return;  // the server's own reads: it audited the API call
  e.principal = cli_principal();
  // A job the server started: name the API principal it runs for.
  if (const char* who = getenv("CAIRN_AUDIT_ON_BEHALF_OF")) e.principal += std::string(" for ") + who;
  e.action = "cli." + fmt::format("{}", fmt::join(path, "."));
  if (auto* o = leaf->get_option_no_throw("--service"); o != nullptr && o->count() > 0) e.service = o->as<std::string>();
  for (const CLI::Option* o : leaf->get_options())
    if (o->get_positional() && o->count() > 0) {
      e.object = o->as<std::string>();
      break;
    }
  e.result = ctx.exit_code == kExitOk ? "ok" : fmt::format("error (exit {})", ctx.exit_code);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  e.source = std::string("cli@") + host;
  server::AuditLog log(loaded.catalog.server.audit_log_path(loaded.catalog.daemon));
  if (auto st = log.append(e); !st.ok()) std::cerr << "cairn: warning: audit log: " << st.message() << "\n";
}

}  // namespace cairn::cli
