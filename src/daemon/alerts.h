// Alerts: what the daemon tells people, and how it reaches them.
//
// AlertManager keeps the state of every alert, keyed by (name, service), in
// the StateStore, so a restart neither repeats nor forgets a notification.
// Notifications go out on state changes only:
//   raise()   not firing -> firing: one "firing" notification; while it stays
//             firing, nothing more until `repeat_interval` (default 4 h) has
//             passed since the last round, then one reminder.
//   resolve() firing -> resolved: one "resolved" notification; resolving an
//             alert that is not firing does nothing.
// Each notification round goes to every receiver whose service filter
// matches. A receiver that fails (after bounded retries with exponential
// backoff and jitter) is logged and kept in the alert's pending list;
// flush(), and the next raise()/resolve() of that alert, try it again.
// Delivery problems are never returned as errors (only StateStore errors
// are), so a dead webhook cannot stop the daemon.
//
// Receivers (docs/alerts.md has the exact JSON):
//   kWebhook       POST <url>, body {"version":"1","status":"firing|resolved","alerts":[...]}
//   kAlertmanager  POST <url>/api/v2/alerts, Alertmanager API v2 (a JSON array
//                  of {labels, annotations, startsAt, endsAt, generatorURL}).
//                  A firing alert carries endsAt = now + 2 * repeat_interval
//                  (a lease that each reminder renews; without one Alertmanager
//                  would resolve it after its resolve_timeout); a resolved
//                  alert carries the (past) time it was resolved.
// Header values (e.g. "Authorization") are sent but never logged.
//
// Thread-safe: one mutex serializes raise/resolve/flush, and it is held while
// delivering, so a call can block for up to
// max_attempts * (timeout + max_backoff) per receiver.
#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "daemon/state_store.h"

namespace cairn::daemon {

// Alert names the daemon raises (docs/alerts.md).
inline constexpr char kAlertBackupFailed[] = "BackupFailed";
inline constexpr char kAlertBackupMissed[] = "BackupMissed";
inline constexpr char kAlertRpoBreach[] = "RPOBreach";
inline constexpr char kAlertBackupSizeAnomaly[] = "BackupSizeAnomaly";
inline constexpr char kAlertBackupDurationAnomaly[] = "BackupDurationAnomaly";
inline constexpr char kAlertDrillFailed[] = "DrillFailed";
inline constexpr char kAlertDrillOverdue[] = "DrillOverdue";
inline constexpr char kAlertFleetDrillFailed[] = "FleetDrillFailed";  // daemon-wide (service "")
inline constexpr char kAlertTest[] = "Test";

enum class Severity { kCritical, kWarning, kInfo };
const char* severity_name(Severity s);  // "critical", "warning", "info"
std::optional<Severity> parse_severity(std::string_view name);

struct Alert {
  std::string name;     // kAlert*
  std::string service;  // "" for daemon-wide alerts
  std::string owner;
  std::string tier;
  Severity severity = Severity::kWarning;
  std::string summary;          // one line
  std::string description;      // details: error text, numbers, what to check
  Time starts_at{};             // raise(): unset (epoch) = now
  std::optional<Time> ends_at;  // set when resolved

  bool resolved() const { return ends_at.has_value(); }
};

enum class ReceiverKind { kWebhook, kAlertmanager };

struct ReceiverConfig {
  std::string name;  // unique, non-empty, no newline; names the receiver in logs
  ReceiverKind kind = ReceiverKind::kWebhook;
  // kWebhook: the full URL; kAlertmanager: the base URL ("http://am:9093").
  std::string url;
  // Services this receiver gets alerts for; empty = all.
  std::vector<std::string> services;
  // Extra request headers, values already expanded by the caller (secrets).
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{10'000};  // whole request

  bool wants(const std::string& service) const;
};

struct AlertManagerOptions {
  std::chrono::seconds repeat_interval = std::chrono::hours(4);
  int max_attempts = 4;  // per receiver and delivery
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30'000};
  std::string generator_url;  // sent to Alertmanager when set
  // Seams for tests; defaults: std::this_thread::sleep_for, the system clock,
  // spdlog's default logger.
  std::function<void(std::chrono::milliseconds)> sleep;
  std::function<Time()> now;
  std::shared_ptr<spdlog::logger> logger;
};

class AlertManager {
 public:
  // kInvalidArgument for an empty, duplicate or newline-containing receiver
  // name, an empty URL, or a header name/value that would break the request.
  // `store` must outlive the manager.
  static core::Result<std::unique_ptr<AlertManager>> create(StateStore* store,
                                                            std::vector<ReceiverConfig> receivers,
                                                            AlertManagerOptions options = {});

  core::Status raise(const Alert& alert);
  core::Status resolve(const std::string& name, const std::string& service);
  // Retries every pending delivery (call once per evaluation).
  core::Status flush();
  // Currently firing alerts, ordered by key.
  core::Result<std::vector<Alert>> firing();
  // Sends `alert` as it is to every matching receiver now, bypassing the
  // state (`cairn daemon test-alert`); the first failure after retries is
  // returned, naming the receiver.
  core::Status send_now(const Alert& alert);

 private:
  AlertManager(StateStore* store, std::vector<ReceiverConfig> receivers,
               AlertManagerOptions options);
  std::vector<std::string> receivers_for(const std::string& service) const;
  // Delivers `record`'s current state to its pending receivers; removes
  // those that accepted it.
  void deliver_pending(AlertRecord& record);
  core::Status deliver(const ReceiverConfig& receiver, const Alert& alert);
  std::chrono::milliseconds backoff(int attempt);

  StateStore* store_;
  std::vector<ReceiverConfig> receivers_;
  AlertManagerOptions options_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

// Request bodies (exposed for tests and docs). `now` and `lease` give the
// endsAt of firing alerts sent to Alertmanager.
std::string webhook_body(const std::vector<Alert>& alerts);
std::string alertmanager_body(const std::vector<Alert>& alerts, Time now,
                              std::chrono::seconds lease, const std::string& generator_url = "");
std::string format_rfc3339(Time t);  // "2024-05-01T12:00:00Z"

}  // namespace cairn::daemon
