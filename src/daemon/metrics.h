// Metrics: Prometheus text exposition (format 0.0.4) for the daemon, and the
// small HTTP server that serves it.
//
// Hand-written rather than prometheus-cpp: Debian 12 ships no prometheus-cpp
// package, and the daemon needs only gauges and counters with labels, which
// is a page of code (HELP/TYPE lines, label value escaping, stable order).
//
// MetricsRegistry: families (name, type, help) holding series (label set ->
// value). render() orders families by name and series by their sorted label
// set, so the output is stable (tests compare it byte for byte). Thread-safe
// (one mutex): job threads update while the server thread renders.
//
// Every metric name the daemon exports is defined in metrics.cc, next to
// ServiceMetrics / update_fleet_metrics(); docs/metrics.md lists them.
//
// MetricsServer: cpp-httplib on a configured address:port serving
// GET /metrics (the renderer's text) and GET /healthz (200 "ok", or 503 and
// the message when the health callback says no). start() binds, then listens
// on a background thread; stop() (and the destructor) ends it and joins.
// start/stop from one owner thread; the handlers run on httplib's pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace httplib {
class Server;
}

namespace cairn::daemon {

enum class MetricType { kGauge, kCounter };

using Labels = std::map<std::string, std::string>;  // label name -> value

class MetricsRegistry {
 public:
  // Declares a family. Re-declaring with the same type is fine (the help text
  // is replaced); kInvalidArgument for a bad name or a type change.
  core::Status declare(const std::string& name, MetricType type, const std::string& help);
  // Sets a series' value (gauges; counters when mirroring a persisted count).
  // kNotFound for an undeclared family, kInvalidArgument for a bad label name.
  core::Status set(const std::string& name, const Labels& labels, double value);
  // Adds delta (>= 0) to a counter series (kInvalidArgument for gauges or delta < 0).
  core::Status add(const std::string& name, const Labels& labels, double delta = 1);
  struct Sample {
    std::string name;
    Labels labels;
    double value = 0;
  };
  // Atomically (as seen by render()) drops every series whose labels include
  // label=value and adds `samples`: one service's metrics are replaced in one
  // step, and an empty `samples` removes a service. All-or-nothing on error.
  core::Status replace_series(const std::string& label, const std::string& value,
                              const std::vector<Sample>& samples);
  std::string render() const;

 private:
  struct Family {
    MetricType type = MetricType::kGauge;
    std::string help;
    std::map<Labels, double> series;
  };
  core::Result<Family*> family(const std::string& name, const Labels& labels);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

// Text-format helpers (exposed for tests).
std::string escape_label_value(const std::string& v);  // \ -> \\, " -> \", newline -> \n
std::string format_metric_value(double v);             // integers without exponent, NaN, +Inf
bool valid_metric_name(const std::string& name);
bool valid_label_name(const std::string& name);

// What the daemon knows about one service; unset optionals are not exported.
struct ServiceMetrics {
  std::string service;
  bool up = true;  // cairn_up: the daemon schedules the service and its last check worked
  std::optional<double> last_success_timestamp;  // Unix seconds of the last successful backup
  std::optional<double> last_duration_s;         // of the last successful backup
  std::optional<double> last_size_bytes;         // total size of the last successful backup
  uint64_t runs_success = 0, runs_failure = 0, runs_cancelled = 0;  // backup runs ever
  std::optional<double> rpo_s;                                      // now - newest restorable point
  std::optional<double> rpo_objective_s;                            // configured RPO
  std::optional<double> repository_size_bytes;
  std::optional<double> drill_last_success_timestamp;
  std::optional<double> drill_rto_s;  // restore time measured by the last drill
  std::optional<double> drill_rpo_s;  // data age of the restored point at the last drill
};

// Declares every cairn_* family (idempotent).
void declare_fleet_metrics(MetricsRegistry& registry);
// Replaces the series of s.service with s's values (declares the families first).
void update_fleet_metrics(MetricsRegistry& registry, const ServiceMetrics& s);
// Convenience: a fresh registry holding `services`, rendered.
std::string render_fleet_metrics(const std::vector<ServiceMetrics>& services);

struct MetricsServerOptions {
  std::string address = "127.0.0.1";
  int port = 9464;  // 0: any free port (see MetricsServer::port())
};

class MetricsServer {
 public:
  using Renderer = std::function<std::string()>;
  using HealthCheck = std::function<core::Status()>;

  // kIOError naming address:port when it cannot bind.
  static core::Result<std::unique_ptr<MetricsServer>> start(const MetricsServerOptions& options,
                                                            Renderer render,
                                                            HealthCheck health = nullptr);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }
  void stop();  // idempotent

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> listen_returned_{false};
  int port_ = 0;
};

}  // namespace cairn::daemon
