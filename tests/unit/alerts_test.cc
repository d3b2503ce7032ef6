// AlertManager against real HTTP receivers on loopback: a cpp-httplib server
// started by each test, and (when installed) a real Alertmanager.
#include "daemon/alerts.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/process.h"
#include "storage/s3_fixture.h"  // closed_port()
#include "unit/test_util.h"

namespace cairn::daemon {
namespace {

using Json = nlohmann::json;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Received {
  std::string path;
  std::string body;
  std::string authorization;
};

// An HTTP receiver on 127.0.0.1:<any port> that records every POST and
// answers with the queued statuses (then 200).
class TestReceiver {
 public:
  TestReceiver() {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      received_.push_back({req.path, req.body, req.get_header_value("Authorization")});
      int status = 200;
      if (!statuses_.empty()) {
        status = statuses_.front();
        statuses_.pop_front();
      }
      res.status = status;
      res.set_content(status == 200 ? "" : "try later", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] {
      server_.listen_after_bind();
      done_ = true;
    });
  }
  ~TestReceiver() {
    while (!done_) {
      server_.stop();
      std::this_thread::sleep_for(milliseconds(1));
    }
    thread_.join();
  }

  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  void answer(std::vector<int> statuses) {
    std::lock_guard lock(mu_);
    statuses_.assign(statuses.begin(), statuses.end());
  }
  std::vector<Received> received() {
    std::lock_guard lock(mu_);
    return received_;
  }
  size_t count() { return received().size(); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::vector<Received> received_;
  std::deque<int> statuses_;
};

// A store, a fake clock and recorded sleeps.
class AlertsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = StateStore::open(dir_ / "state.db");
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    store_ = std::make_unique<StateStore>(std::move(s).value());
  }

  AlertManagerOptions options() {
    AlertManagerOptions o;
    o.now = [this] { return Time(seconds(now_s_.load())); };
    o.sleep = [this](milliseconds d) {
      std::lock_guard lock(mu_);
      sleeps_.push_back(d);
    };
    return o;
  }

  std::unique_ptr<AlertManager> manager(std::vector<ReceiverConfig> receivers) {
    auto m = AlertManager::create(store_.get(), std::move(receivers), options());
    EXPECT_TRUE(m.ok()) << m.status().to_string();
    return std::move(m).value();
  }

  static ReceiverConfig webhook(const std::string& name, const std::string& url,
                                std::vector<std::string> services = {}) {
    ReceiverConfig r;
    r.name = name;
    r.url = url;
    r.services = std::move(services);
    r.timeout = milliseconds(5000);
    return r;
  }

  static Alert backup_failed(const std::string& service = "db") {
    Alert a;
    a.name = kAlertBackupFailed;
    a.service = service;
    a.owner = "team-a";
    a.tier = "gold";
    a.severity = Severity::kCritical;
    a.summary = "backup of " + service + " failed";
    a.description = "pg_dump exited with status 1";
    return a;
  }

  void advance(seconds d) { now_s_ += d.count(); }

  testing::TempDir dir_;
  std::unique_ptr<StateStore> store_;
  std::atomic<int64_t> now_s_{1'700'000'000};
  std::mutex mu_;
  std::vector<milliseconds> sleeps_;
};

TEST_F(AlertsTest, FiresOnceRepeatsAfterIntervalResolvesOnce) {
  TestReceiver rx;
  ReceiverConfig hook = webhook("hook", rx.url());
  hook.headers = {{"Authorization", "Bearer s3cret"}};
  auto m = manager({hook});

  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(m->raise(backup_failed()).ok());
    advance(seconds(60));
  }
  ASSERT_EQ(rx.count(), 1u);
  Received first = rx.received()[0];
  EXPECT_EQ(first.path, "/hook");
  EXPECT_EQ(first.authorization, "Bearer s3cret");
  Json body = Json::parse(first.body);
  EXPECT_EQ(body["version"], "1");
  EXPECT_EQ(body["status"], "firing");
  ASSERT_EQ(body["alerts"].size(), 1u);
  const Json& a = body["alerts"][0];
  EXPECT_EQ(a["status"], "firing");
  EXPECT_EQ(a["name"], "BackupFailed");
  EXPECT_EQ(a["service"], "db");
  EXPECT_EQ(a["owner"], "team-a");
  EXPECT_EQ(a["tier"], "gold");
  EXPECT_EQ(a["severity"], "critical");
  EXPECT_EQ(a["summary"], "backup of db failed");
  EXPECT_EQ(a["description"], "pg_dump exited with status 1");
  EXPECT_EQ(a["startsAt"], "2023-11-14T22:13:20Z");
  EXPECT_TRUE(a["endsAt"].is_null());

  // Still firing 4 h after the first notification: one reminder.
  advance(hours(4) - seconds(5 * 60));
  ASSERT_TRUE(m->raise(backup_failed()).ok());
  ASSERT_TRUE(m->raise(backup_failed()).ok());
  ASSERT_EQ(rx.count(), 2u);
  EXPECT_EQ(Json::parse(rx.received()[1].body)["alerts"][0]["startsAt"], "2023-11-14T22:13:20Z");

  auto firing = m->firing();
  ASSERT_TRUE(firing.ok());
  ASSERT_EQ(firing->size(), 1u);
  EXPECT_EQ((*firing)[0].service, "db");

  advance(seconds(30));
  ASSERT_TRUE(m->resolve(kAlertBackupFailed, "db").ok());
  ASSERT_TRUE(m->resolve(kAlertBackupFailed, "db").ok());
  ASSERT_TRUE(m->resolve(kAlertBackupFailed, "never-raised").ok());
  ASSERT_EQ(rx.count(), 3u);
  Json resolved = Json::parse(rx.received()[2].body);
  EXPECT_EQ(resolved["status"], "resolved");
  EXPECT_EQ(resolved["alerts"][0]["status"], "resolved");
  EXPECT_EQ(resolved["alerts"][0]["endsAt"], format_rfc3339(Time(seconds(now_s_.load()))));
  firing = m->firing();
  ASSERT_TRUE(firing.ok());
  EXPECT_TRUE(firing->empty());

  // Raised again after resolving: a new episode, notified at once.
  ASSERT_TRUE(m->raise(backup_failed()).ok());
  EXPECT_EQ(rx.count(), 4u);
}

TEST_F(AlertsTest, StateSurvivesANewManager) {
  TestReceiver rx;
  {
    auto m = manager({webhook("hook", rx.url())});
    ASSERT_TRUE(m->raise(backup_failed()).ok());
  }
  // The daemon restarts: same database, new manager.
  auto reopened = StateStore::open(dir_ / "state.db");
  ASSERT_TRUE(reopened.ok());
  *store_ = std::move(reopened).value();
  auto m = manager({webhook("hook", rx.url())});
  ASSERT_TRUE(m->raise(backup_failed()).ok());
  EXPECT_EQ(rx.count(), 1u);
  ASSERT_TRUE(m->resolve(kAlertBackupFailed, "db").ok());
  EXPECT_EQ(rx.count(), 2u);
}

TEST_F(AlertsTest, PerServiceRouting) {
  TestReceiver db_team, everyone, web_team;
  auto m =
      manager({webhook("db-team", db_team.url(), {"db", "db2"}),
               webhook("everyone", everyone.url()), webhook("web-team", web_team.url(), {"web"})});
  ASSERT_TRUE(m->raise(backup_failed("db")).ok());
  ASSERT_TRUE(m->raise(backup_failed("db2")).ok());
  ASSERT_TRUE(m->raise(backup_failed("web")).ok());
  ASSERT_TRUE(m->raise(backup_failed("files")).ok());
  EXPECT_EQ(db_team.count(), 2u);
  EXPECT_EQ(everyone.count(), 4u);
  ASSERT_EQ(web_team.count(), 1u);
  EXPECT_EQ(Json::parse(web_team.received()[0].body)["alerts"][0]["service"], "web");
  ASSERT_TRUE(m->resolve(kAlertBackupFailed, "web").ok());
  EXPECT_EQ(db_team.count(), 2u);
  EXPECT_EQ(web_team.count(), 2u);
}

TEST_F(AlertsTest, RetriesWithBackoffAfterServerErrors) {
  TestReceiver rx;
  rx.answer({500, 500});
  auto m = manager({webhook("hook", rx.url())});
  ASSERT_TRUE(m->raise(backup_failed()).ok());
  EXPECT_EQ(rx.count(), 3u);  // 500, 500, 200
  ASSERT_EQ(sleeps_.size(), 2u);
  // initial_backoff 500 ms, doubled, with jitter in [d/2, d].
  EXPECT_GE(sleeps_[0], milliseconds(250));
  EXPECT_LE(sleeps_[0], milliseconds(500));
  EXPECT_GE(sleeps_[1], milliseconds(500));
  EXPECT_LE(sleeps_[1], milliseconds(1000));
  auto rec = store_->alert(alert_key(kAlertBackupFailed, "db"));
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_TRUE((*rec)->pending.empty());
  // Delivered: nothing more on the next check.
  ASSERT_TRUE(m->raise(backup_failed()).ok());
  ASSERT_TRUE(m->flush().ok());
  EXPECT_EQ(rx.count(), 3u);
}

TEST_F(AlertsTest, FailedDeliveryIsKeptForTheNextEvaluation) {
  TestReceiver rx;
  rx.answer({503, 503, 503, 503});  // max_attempts (4) failures
  TestReceiver other;
  auto m = manager({webhook("hook", rx.url()), webhook("other", other.url())});
  ASSERT_TRUE(m->raise(backup_failed()).ok());  // delivery problems are not errors
  EXPECT_EQ(rx.count(), 4u);
  EXPECT_EQ(other.count(), 1u);
  auto rec = store_->alert(alert_key(kAlertBackupFailed, "db"));
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->pending, std::vector<std::string>{"hook"});

  // Next evaluation: only the receiver that missed it gets it.
  ASSERT_TRUE(m->flush().ok());
  EXPECT_EQ(rx.count(), 5u);
  EXPECT_EQ(other.count(), 1u);
  EXPECT_EQ(Json::parse(rx.received()[4].body)["status"], "firing");
  ASSERT_TRUE(m->flush().ok());
  EXPECT_EQ(rx.count(), 5u);

  // A 4xx is not retried within a delivery, but kept for later too.
  rx.answer({400});
  ASSERT_TRUE(m->resolve(kAlertBackupFailed, "db").ok());
  EXPECT_EQ(rx.count(), 6u);
  EXPECT_EQ(other.count(), 2u);
  ASSERT_TRUE(m->flush().ok());
  EXPECT_EQ(rx.count(), 7u);
  EXPECT_EQ(Json::parse(rx.received()[6].body)["status"], "resolved");
}

TEST_F(AlertsTest, UnreachableReceiverDoesNotFail) {
  int port = 0;
  {
    TestReceiver gone;  // a port that was just free
    port = std::stoi(gone.url("").substr(17));
  }
  auto m = manager({webhook("gone", "http://127.0.0.1:" + std::to_string(port) + "/x")});
  EXPECT_TRUE(m->raise(backup_failed()).ok());
  auto rec = store_->alert(alert_key(kAlertBackupFailed, "db"));
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->pending, std::vector<std::string>{"gone"});
  core::Status st = m->send_now(backup_failed());
  EXPECT_EQ(st.code(), core::Code::kTransient);
  EXPECT_NE(st.message().find("receiver gone"), std::string::npos);
}

TEST_F(AlertsTest, AlertmanagerV2Body) {
  TestReceiver rx;
  ReceiverConfig am;
  am.name = "am";
  am.kind = ReceiverKind::kAlertmanager;
  am.url = rx.url("/");  // trailing slash is fine
  auto opts = options();
  opts.generator_url = "http://backup-host:9464/";
  auto made = AlertManager::create(store_.get(), {am}, opts);
  ASSERT_TRUE(made.ok());
  auto m = std::move(made).value();

  ASSERT_TRUE(m->raise(backup_failed()).ok());
  advance(seconds(90));
  ASSERT_TRUE(m->resolve(kAlertBackupFailed, "db").ok());
  auto got = rx.received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].path, "/api/v2/alerts");
  Json firing = Json::parse(got[0].body);
  ASSERT_TRUE(firing.is_array());
  ASSERT_EQ(firing.size(), 1u);
  Json expected_labels = {{"alertname", "BackupFailed"},
                          {"service", "db"},
                          {"severity", "critical"},
                          {"owner", "team-a"},
                          {"tier", "gold"}};
  EXPECT_EQ(firing[0]["labels"], expected_labels);
  EXPECT_EQ(firing[0]["annotations"]["summary"], "backup of db failed");
  EXPECT_EQ(firing[0]["annotations"]["description"], "pg_dump exited with status 1");
  EXPECT_EQ(firing[0]["startsAt"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(firing[0]["endsAt"], "2023-11-15T06:13:20Z");  // lease: 2 * 4 h
  EXPECT_EQ(firing[0]["generatorURL"], "http://backup-host:9464/");
  Json resolved = Json::parse(got[1].body);
  EXPECT_EQ(resolved[0]["labels"], expected_labels);
  EXPECT_EQ(resolved[0]["startsAt"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(resolved[0]["endsAt"], "2023-11-14T22:14:50Z");

  // Empty labels are left out.
  Alert bare;
  bare.name = kAlertTest;
  bare.severity = Severity::kInfo;
  bare.starts_at = Time(seconds(0));
  EXPECT_EQ(alertmanager_body({bare}, Time(seconds(0)), seconds(60)),
            R"([{"labels":{"alertname":"Test","severity":"info"},"annotations":)"
            R"({"summary":"","description":""},"startsAt":"1970-01-01T00:00:00Z",)"
            R"("endsAt":"1970-01-01T00:01:00Z"}])");
}

TEST_F(AlertsTest, CreateValidatesReceivers) {
  auto dup =
      AlertManager::create(store_.get(), {webhook("a", "http://x"), webhook("a", "http://y")});
  EXPECT_EQ(dup.status().code(), core::Code::kInvalidArgument);
  auto no_url = AlertManager::create(store_.get(), {webhook("a", "")});
  EXPECT_EQ(no_url.status().code(), core::Code::kInvalidArgument);
  ReceiverConfig bad = webhook("a", "http://x");
  bad.headers = {{"Authorization", "Bearer abc\r\nX-Evil: 1"}};
  auto bad_header = AlertManager::create(store_.get(), {bad});
  ASSERT_EQ(bad_header.status().code(), core::Code::kInvalidArgument);
  EXPECT_EQ(bad_header.status().message().find("abc"), std::string::npos);  // no secret
  EXPECT_EQ(AlertManager::create(nullptr, {}).status().code(), core::Code::kInvalidArgument);
}

// --- a real Alertmanager ----------------------------------------------------------

// Alerts Alertmanager lists as active or suppressed (resolved ones are left out).
Json list_alerts(httplib::Client& client) {
  auto res = client.Get("/api/v2/alerts");
  if (!res || res->status != 200) return Json::array();
  return Json::parse(res->body);
}

TEST_F(AlertsTest, RealAlertmanagerReceivesAndResolves) {
  const char* kBinary = "/usr/bin/prometheus-alertmanager";
  if (!std::filesystem::exists(kBinary)) GTEST_SKIP() << kBinary << " is not installed";
  std::ofstream(dir_ / "am.yml")
      << "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n";
  std::filesystem::create_directory(dir_ / "data");
  int port = storage::s3test::closed_port();  // a free loopback port
  ASSERT_NE(port, 0);
  auto proc = core::Subprocess::start(
      {kBinary, "--config.file=" + (dir_ / "am.yml"), "--storage.path=" + (dir_ / "data"),
       "--web.listen-address=127.0.0.1:" + std::to_string(port), "--cluster.listen-address="});
  ASSERT_TRUE(proc.ok()) << proc.status().to_string();
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1);
  bool ready = false;
  for (int i = 0; i < 200 && !ready; ++i) {
    auto res = client.Get("/-/ready");
    ready = res && res->status == 200;
    if (!ready) std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_TRUE(ready) << "alertmanager did not start: " << (*proc)->stderr_tail();

  ReceiverConfig am;
  am.name = "alertmanager";
  am.kind = ReceiverKind::kAlertmanager;
  am.url = "http://127.0.0.1:" + std::to_string(port);
  AlertManagerOptions opts;  // the real clock: Alertmanager compares with its own
  auto made = AlertManager::create(store_.get(), {am}, opts);
  ASSERT_TRUE(made.ok());
  auto m = std::move(made).value();

  ASSERT_TRUE(m->raise(backup_failed()).ok());
  auto rec = store_->alert(alert_key(kAlertBackupFailed, "db"));
  ASSERT_TRUE(rec.ok() && rec->has_value());
  ASSERT_TRUE((*rec)->pending.empty()) << "Alertmanager refused the alert";
  Json listed = list_alerts(client);
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0]["labels"]["alertname"], "BackupFailed");
  EXPECT_EQ(listed[0]["labels"]["service"], "db");
  EXPECT_EQ(listed[0]["labels"]["severity"], "critical");
  EXPECT_EQ(listed[0]["labels"]["owner"], "team-a");
  EXPECT_EQ(listed[0]["labels"]["tier"], "gold");
  EXPECT_EQ(listed[0]["annotations"]["summary"], "backup of db failed");

  // Resolved: endsAt is not in the future, so Alertmanager stops listing it.
  std::this_thread::sleep_for(milliseconds(1100));  // endsAt (whole seconds) > startsAt
  ASSERT_TRUE(m->resolve(kAlertBackupFailed, "db").ok());
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = list_alerts(client).empty();
    if (!gone) std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_TRUE(gone) << list_alerts(client).dump();
}

}  // namespace
}  // namespace cairn::daemon
