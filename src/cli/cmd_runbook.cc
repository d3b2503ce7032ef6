// cairn runbook: restore runbooks generated from the policy and live state
// (docs/runbooks.md). This file gathers the state — snapshots and the WAL
// archive from the service's repository, drill reports from the daemon's
// state database — and src/runbook/ turns it into Markdown, HTML or JSON.
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/context.h"
#include "daemon/state_store.h"
#include "runbook/runbook.h"

namespace cairn::cli {

namespace {

namespace fs = std::filesystem;

struct RunbookArgs {
  std::string service, format = "md", out, target_root = runbook::kDefaultTargetRoot;
  bool all = false;
};

// use_service_repository() points the Context and the CAIRN_PASSWORD*
// variables at one service; a runbook of every service must undo that
// between services, or one service would be opened with another's key.
class RepositoryScope {
 public:
  explicit RepositoryScope(Context& ctx)
      : ctx_(ctx),
        repo_(ctx.repo),
        key_file_(ctx.key_file),
        cacert_(ctx.cacert),
        exit_code_(ctx.exit_code) {
    for (const char* v : kVars) {
      const char* value = getenv(v);
      saved_.emplace_back(v, value ? std::optional<std::string>(value) : std::nullopt);
    }
  }
  ~RepositoryScope() {
    ctx_.repo = repo_;
    ctx_.key_file = key_file_;
    ctx_.cacert = cacert_;
    ctx_.exit_code = exit_code_;  // open_repository() sets 10 for a missing repository
    for (const auto& [name, value] : saved_) {
      if (value)
        setenv(name.c_str(), value->c_str(), 1);
      else
        unsetenv(name.c_str());
    }
  }
  RepositoryScope(const RepositoryScope&) = delete;
  RepositoryScope& operator=(const RepositoryScope&) = delete;

 private:
  static constexpr const char* kVars[] = {"CAIRN_PASSWORD", "CAIRN_PASSWORD_FILE",
                                          "CAIRN_PASSWORD_COMMAND"};
  Context& ctx_;
  std::string repo_, key_file_, cacert_;
  int exit_code_;
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

bool has_credential(const Context& ctx) {
  if (!ctx.key_file.empty()) return true;
  for (const char* v : {"CAIRN_PASSWORD", "CAIRN_PASSWORD_FILE", "CAIRN_PASSWORD_COMMAND"})
    if (const char* s = getenv(v); s && *s) return true;
  return false;
}

// The repository's side of the runbook. Never fails: what cannot be read is
// recorded in `in` and becomes a warning of the runbook.
void read_repository(Context& ctx, const policy::Service& svc, runbook::RunbookInput& in) {
  RepositoryScope scope(ctx);
  if (auto st = ctx.use_service_repository(svc); !st.ok()) {
    in.repository_error = st.message();
    return;
  }
  // Never prompt: a runbook is often generated unattended (--all for a docs site).
  if (!has_credential(ctx)) {
    in.repository_error =
        "no credential: the policy names no key source and none of CAIRN_KEY_FILE, "
        "CAIRN_PASSWORD_FILE, CAIRN_PASSWORD_COMMAND, CAIRN_PASSWORD is set";
    return;
  }
  auto repo = ctx.open_repository(false);
  if (!repo.ok()) {
    in.repository_error = repo.status().message();
    return;
  }
  std::vector<std::string> problems;
  auto all = (*repo)->list_snapshots(&problems);
  if (!all.ok()) {
    in.repository_error = all.status().message();
    return;
  }
  in.repository_opened = true;
  for (auto& s : *all)
    if (s.snapshot.service == svc.name) in.snapshots.push_back(std::move(s));
  if (svc.engine.type == "postgres" && svc.engine.mode == "physical" && svc.engine.wal_archiving) {
    auto report = engines::postgres::check_archive(**repo, svc.name);
    if (report.ok())
      in.archive = std::move(*report);
    else
      in.archive_error = report.status().message();
  }
}

void read_drills(const policy::Catalog& catalog, const policy::Service& svc,
                 runbook::RunbookInput& in) {
  in.state_path = catalog.daemon.state;
  std::error_code ec;
  if (!fs::exists(catalog.daemon.state, ec)) return;
  auto store = daemon::StateStore::open(catalog.daemon.state);
  if (!store.ok()) {
    in.state_error = "state database unreadable: " + store.status().message();
    return;
  }
  auto last = store->drill_reports(svc.name, 1);
  auto passed = store->drill_reports(svc.name, 1, true);
  if (!last.ok() || !passed.ok()) {
    in.state_error =
        "state database unreadable: " + (last.ok() ? passed.status() : last.status()).message();
    return;
  }
  in.state_available = true;
  try {
    if (!last->empty())
      in.last_drill =
          drill::DrillReport::from_json(nlohmann::json::parse(last->front().report_json));
    if (!passed->empty())
      in.last_passing_drill =
          drill::DrillReport::from_json(nlohmann::json::parse(passed->front().report_json));
  } catch (const std::exception& e) {
    in.state_error = std::string("a stored drill report is unreadable: ") + e.what();
  }
}

runbook::Runbook make(Context& ctx, const policy::Catalog& catalog, const policy::Service& svc,
                      const std::string& config_path, const RunbookArgs& a) {
  runbook::RunbookInput in;
  in.service = &svc;
  in.config_path = config_path;
  in.timezone = catalog.daemon.timezone;
  in.now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  in.target_root =
      fs::absolute(a.target_root).lexically_normal().string();  // commands run from any folder
  read_repository(ctx, svc, in);
  read_drills(catalog, svc, in);
  return runbook::build(in);
}

std::string render(const runbook::Runbook& b, const std::string& format) {
  return format == "html" ? b.html() : b.markdown();
}

core::Status write_file(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return core::errno_status(errno, "cannot write " + tmp);
    out << text;
    out.close();
    if (!out) return core::io_error("cannot write " + tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return core::io_error("cannot rename " + tmp + " to " + path + ": " + ec.message());
  return {};
}

std::string plain(std::string s) {
  for (const char* mark : {"**", "`"})
    for (auto p = s.find(mark); p != std::string::npos; p = s.find(mark))
      s.erase(p, std::string(mark).size());
  return s;
}

void report_warnings(Context& ctx, const runbook::Runbook& b) {
  if (b.warnings.empty()) return;
  if (!ctx.quiet)
    for (const auto& w : b.warnings)
      std::cerr << "cairn: warning: service " << b.service << ": " << plain(w) << "\n";
  if (ctx.exit_code == kExitOk) ctx.exit_code = kExitWarnings;
}

core::Status run_runbook(Context& ctx, const RunbookArgs& a) {
  if (a.all == !a.service.empty())
    return core::invalid_argument(
        "give --service NAME (one runbook) or --all --out DIR (every service)");
  if (a.all && a.out.empty())
    return core::invalid_argument("--all needs --out DIR: one file per service + an index");
  std::string config_path =
      fs::absolute(policy::find_config(ctx.config)).lexically_normal().string();
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());

  if (!a.all) {
    ASSIGN_OR_RETURN(const policy::Service* svc, find_service(catalog, a.service));
    runbook::Runbook b = make(ctx, catalog, *svc, config_path, a);
    if (ctx.json) {
      ctx.print_json(b.to_json());
    } else if (a.out.empty()) {
      std::cout << render(b, a.format) << std::flush;
    } else {
      TRY(write_file(a.out, render(b, a.format)));
      if (!ctx.quiet)
        std::cerr << "cairn: runbook of " << b.service << " written to " << a.out << "\n";
    }
    report_warnings(ctx, b);
    return {};
  }

  std::error_code ec;
  fs::create_directories(a.out, ec);
  if (ec) return core::errno_status(ec.value(), "--out " + a.out);
  std::vector<runbook::Runbook> books;
  nlohmann::json models = nlohmann::json::array();
  for (const auto& svc : catalog.services) {
    books.push_back(make(ctx, catalog, svc, config_path, a));
    TRY(write_file((fs::path(a.out) / (svc.name + "." + a.format)).string(),
                   render(books.back(), a.format)));
    if (ctx.json) models.push_back(books.back().to_json());
  }
  std::string index = (fs::path(a.out) / ("index." + a.format)).string();
  TRY(write_file(index, a.format == "html" ? runbook::index_html(books)
                                           : runbook::index_markdown(books, "md")));
  if (ctx.json) {
    ctx.print_json({{"index", index}, {"runbooks", models}});
  } else if (!ctx.quiet) {
    std::cout << fmt::format("{} runbook(s) and {} written to {}\n", books.size(),
                             fs::path(index).filename().string(), a.out);
  }
  for (const auto& b : books) report_warnings(ctx, b);
  return {};
}

}  // namespace

void add_runbook(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<RunbookArgs>();
  auto* cmd = app.add_subcommand(
      "runbook", "restore runbook of a service (or of every service) from policy and state");
  cmd->add_option("--service", a->service, "the service of the policy file");
  cmd->add_flag("--all", a->all,
                "every service: one file each plus an index page (needs --out DIR)");
  cmd->add_option("--format", a->format, "md (default) or html (a self-contained page)")
      ->check(CLI::IsMember({"md", "html"}));
  cmd->add_option("--out", a->out,
                  "write to this file (with --all: this folder) instead of stdout");
  cmd->add_option("--target-root", a->target_root,
                  "default restore targets printed in the commands: <DIR>/<service> (default "
                  "/var/tmp/cairn-restore)");
  cmd->callback([&ctx, a] { ctx.run([&] { return run_runbook(ctx, *a); }); });
}

}  // namespace cairn::cli
