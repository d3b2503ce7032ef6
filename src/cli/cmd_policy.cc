// cairn policy validate|show: the service catalog (docs/configuration.md).
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <iostream>

#include "cli/context.h"
#include "policy/catalog.h"

namespace cairn::cli {

namespace {

YAML::Node to_yaml(const nlohmann::json& j) {
  YAML::Node n;
  if (j.is_object()) {
    n = YAML::Node(YAML::NodeType::Map);
    for (const auto& [k, v] : j.items()) n[k] = to_yaml(v);
  } else if (j.is_array()) {
    n = YAML::Node(YAML::NodeType::Sequence);
    for (const auto& v : j) n.push_back(to_yaml(v));
  } else if (j.is_string()) {
    n = j.get<std::string>();
  } else if (!j.is_null()) {
    n = j.dump();
  }
  return n;
}

core::Status run_validate(Context& ctx) {
  std::string path = policy::find_config(ctx.config);
  policy::LoadResult r = policy::load_catalog(path);
  size_t errors = 0, warnings = 0;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& d : r.diagnostics) {
    bool is_error = d.severity == policy::Diagnostic::Severity::kError;
    (is_error ? errors : warnings)++;
    if (ctx.json) {
      list.push_back({{"severity", is_error ? "error" : "warning"}, {"file", d.file}, {"line", d.line},
                      {"column", d.column}, {"service", d.service}, {"field", d.field},
                      {"message", d.message}});
    } else {
      std::cerr << d.to_string() << "\n";
    }
  }
  if (ctx.json) {
    ctx.print_json({{"file", path}, {"valid", errors == 0}, {"services", r.catalog.services.size()},
                    {"diagnostics", list}});
  } else if (!ctx.quiet && errors == 0) {
    std::cout << fmt::format("{}: {} service(s), policy valid{}\n", path, r.catalog.services.size(),
                             warnings ? fmt::format(" ({} warning(s))", warnings) : "");
  }
  if (errors) {
    ctx.exit_code = kExitUsage;
    if (!ctx.json) std::cerr << fmt::format("{}: {} error(s), {} warning(s)\n", path, errors, warnings);
  } else if (warnings) {
    ctx.exit_code = kExitWarnings;
  }
  return {};
}

core::Status run_show(Context& ctx, const std::string& service) {
  ASSIGN_OR_RETURN(auto catalog, ctx.load_policy());
  nlohmann::json j = policy::to_json(catalog);
  if (!service.empty()) {
    TRY(find_service(catalog, service).status());
    j = {{"services", {{service, j["services"][service]}}}};
  }
  if (ctx.json) {
    ctx.print_json(j);
  } else {
    YAML::Emitter out;
    out << to_yaml(j);
    std::cout << out.c_str() << "\n";
  }
  return {};
}

}  // namespace

void add_policy(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("policy", "check and show the service catalog (cairn.yaml)");
  cmd->require_subcommand(1);
  auto* validate = cmd->add_subcommand("validate", "check the policy file; every problem with file:line:column");
  validate->callback([&ctx] { ctx.run([&] { return run_validate(ctx); }); });
  auto* show = cmd->add_subcommand("show", "the effective policy with defaults filled in");
  auto service = std::make_shared<std::string>();
  show->add_option("--service", *service, "only this service");
  show->callback([&ctx, service] { ctx.run([&] { return run_show(ctx, *service); }); });
}

}  // namespace cairn::cli
