#include "daemon/metrics.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <cmath>

namespace cairn::daemon {

// --- text format ----------------------------------------------------------------

bool valid_metric_name(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0) return false;  // "__" is reserved
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string escape_label_value(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

// HELP text escapes only backslash and newline.
std::string escape_help(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Timestamps and byte counts read better without an exponent.
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<int64_t>(v));
  return fmt::format("{}", v);
}

// --- registry ---------------------------------------------------------------------

core::Status MetricsRegistry::declare(const std::string& name, MetricType type,
                                      const std::string& help) {
  if (!valid_metric_name(name)) return core::invalid_argument("bad metric name '" + name + "'");
  std::lock_guard lock(mu_);
  auto [it, inserted] = families_.try_emplace(name);
  if (!inserted && it->second.type != type) {
    return core::invalid_argument("metric " + name + " declared again with another type");
  }
  it->second.type = type;
  it->second.help = help;
  return core::ok_status();
}

core::Result<MetricsRegistry::Family*> MetricsRegistry::family(const std::string& name,
                                                               const Labels& labels) {
  auto it = families_.find(name);
  if (it == families_.end()) return core::not_found("metric " + name + " is not declared");
  for (const auto& [label, value] : labels) {
    if (!valid_label_name(label)) {
      return core::invalid_argument("metric " + name + ": bad label name '" + label + "'");
    }
  }
  return &it->second;
}

core::Status MetricsRegistry::set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Family * f, family(name, labels));
  f->series[labels] = value;
  return core::ok_status();
}

core::Status MetricsRegistry::add(const std::string& name, const Labels& labels, double delta) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Family * f, family(name, labels));
  if (f->type != MetricType::kCounter) {
    return core::invalid_argument("metric " + name + " is not a counter");
  }
  if (!(delta >= 0)) return core::invalid_argument("metric " + name + ": negative increment");
  f->series[labels] += delta;
  return core::ok_status();
}

core::Status MetricsRegistry::replace_series(const std::string& label, const std::string& value,
                                             const std::vector<Sample>& samples) {
  std::lock_guard lock(mu_);
  // Check everything first so that a bad sample leaves the registry untouched.
  for (const Sample& s : samples) {
    ASSIGN_OR_RETURN(Family * f, family(s.name, s.labels));
    (void)f;
  }
  for (auto& [name, f] : families_) {
    std::erase_if(f.series, [&](const auto& kv) {
      auto it = kv.first.find(label);
      return it != kv.first.end() && it->second == value;
    });
  }
  for (const Sample& s : samples) families_[s.name].series[s.labels] = s.value;
  return core::ok_status();
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + name + (f.type == MetricType::kCounter ? " counter\n" : " gauge\n");
    for (const auto& [labels, value] : f.series) {
      out += name;
      if (!labels.empty()) {
        out += '{';
        bool first = true;
        for (const auto& [k, v] : labels) {
          if (!first) out += ',';
          first = false;
          out += k + "=\"" + escape_label_value(v) + "\"";
        }
        out += '}';
      }
      out += ' ' + format_metric_value(value) + '\n';
    }
  }
  return out;
}

// --- the daemon's metrics -----------------------------------------------------------

namespace {

struct FleetMetric {
  const char* name;
  MetricType type;
  const char* help;
};

constexpr FleetMetric kLastSuccess{"cairn_backup_last_success_timestamp_seconds",
                                   MetricType::kGauge,
                                   "Unix time of the last successful backup of the service."};
constexpr FleetMetric kDuration{"cairn_backup_duration_seconds", MetricType::kGauge,
                                "Duration of the last successful backup of the service."};
constexpr FleetMetric kSize{"cairn_backup_size_bytes", MetricType::kGauge,
                            "Total size of the last successful backup of the service."};
constexpr FleetMetric kRuns{"cairn_backup_runs_total", MetricType::kCounter,
                            "Backup runs of the service by result (success, failure, cancelled)."};
constexpr FleetMetric kRpo{"cairn_rpo_seconds", MetricType::kGauge,
                           "Age of the service's newest restorable point (current RPO)."};
constexpr FleetMetric kRpoObjective{"cairn_rpo_objective_seconds", MetricType::kGauge,
                                    "Recovery point objective configured for the service."};
constexpr FleetMetric kRepoSize{"cairn_repository_size_bytes", MetricType::kGauge,
                                "Size of the service's repository as last measured."};
constexpr FleetMetric kDrillSuccess{"cairn_drill_last_success_timestamp_seconds",
                                    MetricType::kGauge,
                                    "Unix time of the last successful restore drill."};
constexpr FleetMetric kDrillRto{"cairn_drill_rto_seconds", MetricType::kGauge,
                                "Restore time measured by the last successful drill."};
constexpr FleetMetric kDrillRpo{"cairn_drill_rpo_seconds", MetricType::kGauge,
                                "Age of the point restored by the last successful drill."};
constexpr FleetMetric kUp{"cairn_up", MetricType::kGauge,
                          "1 if the daemon schedules the service and its last check worked."};

constexpr const FleetMetric* kFleet[] = {&kLastSuccess, &kDuration,     &kSize,     &kRuns,
                                         &kRpo,         &kRpoObjective, &kRepoSize, &kDrillSuccess,
                                         &kDrillRto,    &kDrillRpo,     &kUp};

}  // namespace

void declare_fleet_metrics(MetricsRegistry& registry) {
  for (const FleetMetric* m : kFleet) (void)registry.declare(m->name, m->type, m->help);
}

void update_fleet_metrics(MetricsRegistry& registry, const ServiceMetrics& s) {
  declare_fleet_metrics(registry);
  std::vector<MetricsRegistry::Sample> samples;
  Labels svc{{"service", s.service}};
  auto put = [&](const FleetMetric& m, const std::optional<double>& v) {
    if (v) samples.push_back({m.name, svc, *v});
  };
  put(kLastSuccess, s.last_success_timestamp);
  put(kDuration, s.last_duration_s);
  put(kSize, s.last_size_bytes);
  for (auto [result, n] :
       {std::pair{"success", s.runs_success}, std::pair{"failure", s.runs_failure},
        std::pair{"cancelled", s.runs_cancelled}}) {
    samples.push_back(
        {kRuns.name, {{"service", s.service}, {"result", result}}, static_cast<double>(n)});
  }
  put(kRpo, s.rpo_s);
  put(kRpoObjective, s.rpo_objective_s);
  put(kRepoSize, s.repository_size_bytes);
  put(kDrillSuccess, s.drill_last_success_timestamp);
  put(kDrillRto, s.drill_rto_s);
  put(kDrillRpo, s.drill_rpo_s);
  put(kUp, s.up ? 1.0 : 0.0);
  // Names are constants and the only label is "service": cannot fail.
  (void)registry.replace_series("service", s.service, samples);
}

std::string render_fleet_metrics(const std::vector<ServiceMetrics>& services) {
  MetricsRegistry registry;
  declare_fleet_metrics(registry);
  for (const auto& s : services) update_fleet_metrics(registry, s);
  return registry.render();
}

// --- server -------------------------------------------------------------------------

core::Result<std::unique_ptr<MetricsServer>> MetricsServer::start(
    const MetricsServerOptions& options, Renderer render, HealthCheck health) {
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->server_ = std::make_unique<httplib::Server>();
  s->server_->Get("/metrics",
                  [render = std::move(render)](const httplib::Request&, httplib::Response& res) {
                    res.set_content(render(), "text/plain; version=0.0.4; charset=utf-8");
                  });
  s->server_->Get("/healthz",
                  [health = std::move(health)](const httplib::Request&, httplib::Response& res) {
                    core::Status st = health ? health() : core::ok_status();
                    if (st.ok()) {
                      res.set_content("ok\n", "text/plain");
                    } else {
                      res.status = 503;
                      res.set_content(st.message() + "\n", "text/plain");
                    }
                  });
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // daemon bind the same port and silently take half the scrapes.
  s->server_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  std::string where = options.address + ":" + std::to_string(options.port);
  if (options.port == 0) {
    s->port_ = s->server_->bind_to_any_port(options.address);
    if (s->port_ < 0) return core::io_error("metrics server: cannot listen on " + where);
  } else {
    if (!s->server_->bind_to_port(options.address, options.port)) {
      return core::io_error("metrics server: cannot listen on " + where);
    }
    s->port_ = options.port;
  }
  MetricsServer* self = s.get();
  s->thread_ = std::thread([self] {
    self->server_->listen_after_bind();
    self->listen_returned_ = true;
  });
  return s;
}

void MetricsServer::stop() {
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing until listen_after_bind() has marked the
  // server running, so repeat it until the listening thread has returned.
  while (!listen_returned_) {
    server_->stop();
    if (!listen_returned_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  thread_.join();
}

MetricsServer::~MetricsServer() { stop(); }

}  // namespace cairn::daemon
