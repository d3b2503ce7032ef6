// cairn service new: scaffolds a service entry in the policy file with the
// defaults of its tier (docs/cli.md#cairn-service-new). The file is edited as
// text — the entry is inserted at the end of `services:` — so its comments
// and formatting stay; the result is validated before anything is written.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/context.h"
#include "policy/scaffold.h"

namespace cairn::cli {

namespace {

namespace fs = std::filesystem;

struct ServiceNewArgs {
  std::string name, engine, tier = "medium", owner, mode, repository, password_file;
  bool print = false;
};

constexpr char kDefaultRepository[] = "/var/backups/cairn";
constexpr char kDefaultPasswordFile[] = "/etc/cairn/cairn.password";

core::Status write_atomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".cairn-new";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return core::errno_status(errno, "cannot write " + tmp);
    out << text;
    out.flush();
    if (!out) return core::io_error("cannot write " + tmp);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) == 0)
    ::chmod(tmp.c_str(), st.st_mode & 07777);  // keep the file's mode
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return core::io_error("cannot replace " + path + ": " + ec.message());
  }
  return {};
}

// Engines `service new` offers beyond policy::scaffold_engines(). The volume
// stanza is built here from the files one (same tier defaults, same drill
// check: a drill restores the volume's files under their recorded path) so
// that this change stays out of src/policy/, which other branches edit;
// fold it into policy::scaffold_service when those land.
const std::vector<std::string>& new_engines() {
  static const std::vector<std::string> engines = [] {
    std::vector<std::string> v = policy::scaffold_engines();
    if (std::find(v.begin(), v.end(), "volume") == v.end()) v.push_back("volume");
    return v;
  }();
  return engines;
}

core::Result<std::string> scaffold(const policy::ScaffoldOptions& o) {
  const auto& known = policy::scaffold_engines();
  if (o.engine != "volume" || std::find(known.begin(), known.end(), "volume") != known.end())
    return policy::scaffold_service(o);
  policy::ScaffoldOptions files = o;
  files.engine = "files";
  ASSIGN_OR_RETURN(std::string entry, policy::scaffold_service(files));
  std::string from = "engine: { type: files, paths: [/srv/" + o.name + "] }";
  auto at = entry.find(from);
  if (at == std::string::npos)
    return core::unsupported("service new: unexpected files stanza for volume:\n" + entry);
  entry.replace(at, from.size(),
                "engine: { type: volume, driver: auto, source: /srv/" + o.name +
                    " }   # a btrfs subvolume, an LVM or ZFS mount point "
                    "(docs/engines/volume.md)");
  return entry;
}

core::Status run_service_new(Context& ctx, const ServiceNewArgs& a) {
  std::string path = policy::find_config(ctx.config);
  std::string text;
  std::error_code ec;
  bool exists = fs::exists(path, ec);
  if (exists) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return core::errno_status(errno, "cannot read the policy file " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  ASSIGN_OR_RETURN(auto outline, policy::outline(text, path));
  for (const auto& s : outline.services)
    if (s == a.name)
      return core::invalid_argument("service \"" + a.name + "\" already exists in " + path);

  policy::ScaffoldOptions o;
  o.name = a.name;
  o.engine = a.engine;
  o.tier = a.tier;
  o.owner = a.owner;
  o.mode = a.mode;
  o.indent = outline.indent;
  if (!a.repository.empty() || !outline.has_repository) {
    o.repository_location = a.repository.empty() ? kDefaultRepository : a.repository;
    o.password_file =
        a.password_file.empty() && a.repository.empty() ? kDefaultPasswordFile : a.password_file;
  }
  ASSIGN_OR_RETURN(std::string entry, scaffold(o));
  std::string base = exists ? text : "# cairn policy file: docs/configuration.md\nversion: 1\n";
  ASSIGN_OR_RETURN(std::string updated, policy::insert_service(base, entry));

  // Validate the whole file as it would be; only the new entry's problems stop us.
  policy::LoadResult check = policy::parse_catalog(updated, path);
  std::vector<std::string> own, other;
  for (const auto& d : check.diagnostics) {
    if (d.severity != policy::Diagnostic::Severity::kError) continue;
    (d.service == a.name ? own : other).push_back(d.to_string());
  }
  if (a.print) {
    std::cout << entry << std::flush;
    for (const auto& e : own) std::cerr << e << "\n";
    if (!own.empty()) {
      std::cerr << "cairn: warning: this cairn does not accept the entry as it is (above)\n";
      if (ctx.exit_code == kExitOk) ctx.exit_code = kExitWarnings;
    }
    return {};
  }
  if (!own.empty()) {
    std::string list;
    for (const auto& e : own) list += "\n" + e;
    return core::invalid_argument("the new entry does not validate, " + path +
                                  " is unchanged:" + list);
  }
  TRY(write_atomically(path, updated));
  if (!ctx.quiet) {
    const auto* t = policy::tier_defaults(a.tier);
    std::cout << fmt::format("added service {} ({}, tier {}: rpo {}, rto {}) to {}\n", a.name,
                             a.engine, a.tier, t->rpo, t->rto, path);
    if (!o.repository_location.empty())
      std::cout << fmt::format("  repository {} (password file {}): create it with cairn init\n",
                               o.repository_location,
                               o.password_file.empty() ? "-" : o.password_file);
    if (a.engine == "exec")
      std::cout << "  set engine.command: the placeholder fails every backup until you do\n";
    for (const auto& e : other)
      std::cerr << "cairn: note: the file has other problems: " << e << "\n";
  }
  return {};
}

}  // namespace

void add_service(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("service", "manage the services of the policy file");
  cmd->require_subcommand(1);
  auto a = std::make_shared<ServiceNewArgs>();
  auto* create =
      cmd->add_subcommand("new", "add a service to the policy file with its tier's defaults");
  create->add_option("name", a->name, "service name (lower-case letters, digits, . _ -)")
      ->required();
  create
      ->add_option("--engine", a->engine, "postgres, mariadb, redis, sqlite, volume, files or exec")
      ->required()
      ->check(CLI::IsMember(new_engines()));
  create->add_option("--tier", a->tier, "critical, high, medium (default) or low")
      ->check(CLI::IsMember({"critical", "high", "medium", "low"}));
  create->add_option("--owner", a->owner, "the team that answers for the data (default team-NAME)");
  create
      ->add_option("--mode", a->mode, "postgres: physical (default, with WAL archiving) or logical")
      ->check(CLI::IsMember({"physical", "logical"}));
  create->add_option(
      "--repository", a->repository,
      "repository location for this service (default: inherited, else /var/backups/cairn)");
  create->add_option("--password-file", a->password_file, "with --repository: its password file");
  create->add_flag("--print", a->print, "print the entry instead of adding it to the file");
  create->callback([&ctx, a] { ctx.run([&] { return run_service_new(ctx, *a); }); });
}

}  // namespace cairn::cli
