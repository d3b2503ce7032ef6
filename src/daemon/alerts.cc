#include "daemon/alerts.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

namespace cairn::daemon {

namespace {

using Json = nlohmann::ordered_json;

// --- libcurl ------------------------------------------------------------------

struct EasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  size_t len = size * n;
  if (out->size() < 512) out->append(data, std::min(len, 512 - out->size()));
  return len;
}

// POSTs a JSON body. kTransient for transport errors, 429 and 5xx (worth a
// retry); kIOError for other non-2xx answers. Messages never carry header
// values.
core::Status post_json(const ReceiverConfig& r, const std::string& url, const std::string& body) {
  curl_init_once();
  EasyPtr easy(curl_easy_init());
  if (!easy) return core::io_error("receiver " + r.name + ": curl_easy_init failed");
  SlistPtr headers;
  auto add_header = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(headers.get(), line.c_str());
    if (next != nullptr) {
      (void)headers.release();
      headers.reset(next);
    }
  };
  add_header("Content-Type: application/json");
  for (const auto& [name, value] : r.headers) add_header(name + ": " + value);

  std::string response;
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* e = easy.get();
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count()));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<int64_t>(r.timeout.count(), 10'000)));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &response);
  CURLcode rc = curl_easy_perform(e);
  if (rc != CURLE_OK) {
    return {core::Code::kTransient,
            "receiver " + r.name + ": " + (errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc))};
  }
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 200 && status < 300) return core::ok_status();
  std::string msg = "receiver " + r.name + ": HTTP " + std::to_string(status);
  if (!response.empty()) msg += ": " + response;
  bool retry = status == 429 || status >= 500;
  return {retry ? core::Code::kTransient : core::Code::kIOError, msg};
}

bool valid_header_part(const std::string& s, bool is_name) {
  if (is_name && s.empty()) return false;
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
    if (is_name && (c == ':' || c == ' ')) return false;
  }
  return true;
}

Alert to_alert(const AlertRecord& r) {
  Alert a;
  a.name = r.name;
  a.service = r.service;
  a.owner = r.owner;
  a.tier = r.tier;
  a.severity = parse_severity(r.severity).value_or(Severity::kWarning);
  a.summary = r.summary;
  a.description = r.description;
  a.starts_at = r.since;
  if (!r.firing) a.ends_at = r.ends_at.value_or(r.since);
  return a;
}

}  // namespace

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::kCritical:
      return "critical";
    case Severity::kWarning:
      return "warning";
    case Severity::kInfo:
      return "info";
  }
  return "warning";
}

std::optional<Severity> parse_severity(std::string_view name) {
  for (Severity s : {Severity::kCritical, Severity::kWarning, Severity::kInfo}) {
    if (name == severity_name(s)) return s;
  }
  return std::nullopt;
}

bool ReceiverConfig::wants(const std::string& service) const {
  return services.empty() || std::find(services.begin(), services.end(), service) != services.end();
}

std::string format_rfc3339(Time t) {
  time_t secs = static_cast<time_t>(t.time_since_epoch().count());
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string webhook_body(const std::vector<Alert>& alerts) {
  bool any_firing =
      std::any_of(alerts.begin(), alerts.end(), [](const Alert& a) { return !a.resolved(); });
  Json list = Json::array();
  for (const Alert& a : alerts) {
    Json j;
    j["status"] = a.resolved() ? "resolved" : "firing";
    j["name"] = a.name;
    j["service"] = a.service;
    j["owner"] = a.owner;
    j["tier"] = a.tier;
    j["severity"] = severity_name(a.severity);
    j["summary"] = a.summary;
    j["description"] = a.description;
    j["startsAt"] = format_rfc3339(a.starts_at);
    j["endsAt"] = a.ends_at ? Json(format_rfc3339(*a.ends_at)) : Json(nullptr);
    list.push_back(std::move(j));
  }
  Json body;
  body["version"] = "1";
  body["status"] = any_firing ? "firing" : "resolved";
  body["alerts"] = std::move(list);
  return body.dump(-1, ' ', false, Json::error_handler_t::replace);  // messages may quote non-UTF-8 names
}

std::string alertmanager_body(const std::vector<Alert>& alerts, Time now,
                              std::chrono::seconds lease, const std::string& generator_url) {
  Json list = Json::array();
  for (const Alert& a : alerts) {
    Json labels;
    labels["alertname"] = a.name;
    // Alertmanager treats an empty label as absent; leave those out.
    auto label = [&](const char* key, const std::string& v) {
      if (!v.empty()) labels[key] = v;
    };
    label("service", a.service);
    label("severity", severity_name(a.severity));
    label("owner", a.owner);
    label("tier", a.tier);
    Json j;
    j["labels"] = std::move(labels);
    j["annotations"] = {{"summary", a.summary}, {"description", a.description}};
    j["startsAt"] = format_rfc3339(a.starts_at);
    j["endsAt"] = format_rfc3339(a.ends_at ? *a.ends_at : now + lease);
    if (!generator_url.empty()) j["generatorURL"] = generator_url;
    list.push_back(std::move(j));
  }
  return list.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// --- AlertManager -------------------------------------------------------------

core::Result<std::unique_ptr<AlertManager>> AlertManager::create(
    StateStore* store, std::vector<ReceiverConfig> receivers, AlertManagerOptions options) {
  if (store == nullptr) return core::invalid_argument("alert manager: no state store");
  std::set<std::string> names;
  for (const auto& r : receivers) {
    if (r.name.empty() || r.name.find('\n') != std::string::npos) {
      return core::invalid_argument("alert receiver '" + r.name + "': bad name");
    }
    if (!names.insert(r.name).second) {
      return core::invalid_argument("alert receiver " + r.name + ": defined twice");
    }
    if (r.url.empty()) return core::invalid_argument("alert receiver " + r.name + ": no url");
    for (const auto& [name, value] : r.headers) {
      if (!valid_header_part(name, true) || !valid_header_part(value, false)) {
        // The value may be a secret: name only the header.
        return core::invalid_argument("alert receiver " + r.name + ": bad header " + name);
      }
    }
  }
  if (options.max_attempts < 1) options.max_attempts = 1;
  if (!options.sleep)
    options.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  if (!options.now)
    options.now = [] {
      return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    };
  if (!options.logger) options.logger = spdlog::default_logger();
  return std::unique_ptr<AlertManager>(
      new AlertManager(store, std::move(receivers), std::move(options)));
}

AlertManager::AlertManager(StateStore* store, std::vector<ReceiverConfig> receivers,
                           AlertManagerOptions options)
    : store_(store),
      receivers_(std::move(receivers)),
      options_(std::move(options)),
      rng_(std::random_device{}()) {}

std::vector<std::string> AlertManager::receivers_for(const std::string& service) const {
  std::vector<std::string> out;
  for (const auto& r : receivers_) {
    if (r.wants(service)) out.push_back(r.name);
  }
  return out;
}

std::chrono::milliseconds AlertManager::backoff(int attempt) {
  // Exponential (initial * 2^(attempt-1), capped), then "equal jitter": a
  // uniform pick in [d/2, d] so that several daemons do not retry in step.
  auto d = options_.initial_backoff;
  for (int i = 1; i < attempt && d < options_.max_backoff; ++i) d *= 2;
  d = std::min(d, options_.max_backoff);
  int64_t hi = d.count();
  std::uniform_int_distribution<int64_t> pick(hi / 2, hi);
  return std::chrono::milliseconds(pick(rng_));
}

core::Status AlertManager::deliver(const ReceiverConfig& r, const Alert& alert) {
  std::string url = r.url;
  std::string body;
  if (r.kind == ReceiverKind::kAlertmanager) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    url += "/api/v2/alerts";
    body = alertmanager_body({alert}, options_.now(), 2 * options_.repeat_interval,
                             options_.generator_url);
  } else {
    body = webhook_body({alert});
  }
  core::Status st;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    st = post_json(r, url, body);
    if (st.ok()) return st;
    options_.logger->warn("alert {}/{}: delivery to receiver {} failed (attempt {}/{}): {}",
                          alert.name, alert.service, r.name, attempt, options_.max_attempts,
                          st.message());
    if (st.code() != core::Code::kTransient || attempt == options_.max_attempts) break;
    options_.sleep(backoff(attempt));
  }
  return st;
}

void AlertManager::deliver_pending(AlertRecord& record) {
  Alert alert = to_alert(record);
  std::vector<std::string> still;
  for (const auto& name : record.pending) {
    auto it = std::find_if(receivers_.begin(), receivers_.end(),
                           [&](const ReceiverConfig& r) { return r.name == name; });
    if (it == receivers_.end()) {
      options_.logger->info("alert {}: receiver {} is no longer configured; dropped", record.key,
                            name);
      continue;
    }
    core::Status st = deliver(*it, alert);
    if (!st.ok()) {
      options_.logger->error(
          "alert {}: receiver {} did not take the {} notification; kept for retry", record.key,
          name, record.firing ? "firing" : "resolved");
      still.push_back(name);
    }
  }
  record.pending = std::move(still);
}

core::Status AlertManager::raise(const Alert& alert) {
  if (alert.name.empty()) return core::invalid_argument("alert without a name");
  std::lock_guard lock(mu_);
  Time now = options_.now();
  std::string key = alert_key(alert.name, alert.service);
  ASSIGN_OR_RETURN(std::optional<AlertRecord> old, store_->alert(key));
  AlertRecord rec;
  bool notify = false;
  if (!old || !old->firing) {
    rec.key = key;
    rec.name = alert.name;
    rec.service = alert.service;
    rec.firing = true;
    rec.since = alert.starts_at == Time{} ? now : alert.starts_at;
    notify = true;
  } else {
    rec = std::move(*old);
    notify = rec.pending.empty() &&
             (!rec.last_sent_at || now - *rec.last_sent_at >= options_.repeat_interval);
  }
  // The newest text wins; a changed summary alone does not notify.
  rec.severity = severity_name(alert.severity);
  rec.summary = alert.summary;
  rec.description = alert.description;
  rec.owner = alert.owner;
  rec.tier = alert.tier;
  if (notify) {
    rec.last_sent_at = now;
    rec.pending = receivers_for(rec.service);
  }
  // Persist before sending: a crash mid-delivery repeats a notification
  // rather than losing it.
  TRY(store_->put_alert(rec));
  if (rec.pending.empty()) return core::ok_status();
  deliver_pending(rec);
  return store_->put_alert(rec);
}

core::Status AlertManager::resolve(const std::string& name, const std::string& service) {
  std::lock_guard lock(mu_);
  Time now = options_.now();
  ASSIGN_OR_RETURN(std::optional<AlertRecord> rec, store_->alert(alert_key(name, service)));
  if (!rec) return core::ok_status();
  if (rec->firing) {
    rec->firing = false;
    rec->ends_at = now;
    rec->last_sent_at = now;
    rec->pending = receivers_for(rec->service);
    TRY(store_->put_alert(*rec));
  }
  if (rec->pending.empty()) return core::ok_status();
  deliver_pending(*rec);
  return store_->put_alert(*rec);
}

core::Status AlertManager::flush() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(std::vector<AlertRecord> all, store_->alerts());
  for (AlertRecord& rec : all) {
    if (rec.pending.empty()) continue;
    deliver_pending(rec);
    TRY(store_->put_alert(rec));
  }
  return core::ok_status();
}

core::Result<std::vector<Alert>> AlertManager::firing() {
  ASSIGN_OR_RETURN(std::vector<AlertRecord> all, store_->alerts());
  std::vector<Alert> out;
  for (const AlertRecord& rec : all) {
    if (rec.firing) out.push_back(to_alert(rec));
  }
  return out;
}

core::Status AlertManager::send_now(const Alert& alert) {
  std::lock_guard lock(mu_);
  Alert a = alert;
  if (a.starts_at == Time{}) a.starts_at = options_.now();
  core::Status first;
  for (const auto& r : receivers_) {
    if (!r.wants(a.service)) continue;
    core::Status st = deliver(r, a);
    if (!st.ok() && first.ok()) first = st;
  }
  return first;
}

}  // namespace cairn::daemon
