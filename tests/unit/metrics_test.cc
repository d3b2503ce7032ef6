// Prometheus text rendering, checked byte for byte and by promtool, and the
// HTTP server on loopback.
#include "daemon/metrics.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>

#include "core/file.h"
#include "core/process.h"
#include "unit/test_util.h"

namespace cairn::daemon {
namespace {

TEST(Metrics, ExactRendering) {
  MetricsRegistry r;
  ASSERT_TRUE(r.declare("b_total", MetricType::kCounter, "Things counted.").ok());
  ASSERT_TRUE(r.declare("a_seconds", MetricType::kGauge, "A duration.").ok());
  ASSERT_TRUE(r.declare("c_empty", MetricType::kGauge, "Nothing yet.").ok());
  ASSERT_TRUE(r.set("a_seconds", {{"service", "web"}}, 2.5).ok());
  ASSERT_TRUE(r.set("a_seconds", {{"service", "db"}}, 1700000000).ok());
  ASSERT_TRUE(r.add("b_total", {{"service", "db"}, {"result", "success"}}).ok());
  ASSERT_TRUE(r.add("b_total", {{"service", "db"}, {"result", "success"}}, 2).ok());
  ASSERT_TRUE(r.add("b_total", {{"result", "failure"}, {"service", "db"}}).ok());
  ASSERT_TRUE(r.set("b_total", {}, 7).ok());
  EXPECT_EQ(r.render(),
            "# HELP a_seconds A duration.\n"
            "# TYPE a_seconds gauge\n"
            "a_seconds{service=\"db\"} 1700000000\n"
            "a_seconds{service=\"web\"} 2.5\n"
            "# HELP b_total Things counted.\n"
            "# TYPE b_total counter\n"
            "b_total 7\n"
            "b_total{result=\"failure\",service=\"db\"} 1\n"
            "b_total{result=\"success\",service=\"db\"} 3\n"
            "# HELP c_empty Nothing yet.\n"
            "# TYPE c_empty gauge\n");
}

TEST(Metrics, Escaping) {
  EXPECT_EQ(escape_label_value(R"(a"b\c)"
                               "\nd"),
            R"(a\"b\\c\nd)");
  MetricsRegistry r;
  ASSERT_TRUE(r.declare("x", MetricType::kGauge, "Help with \\ and\nnewline \"quoted\".").ok());
  ASSERT_TRUE(r.set("x", {{"path", "C:\\dir\n\"q\""}}, 1).ok());
  EXPECT_EQ(r.render(),
            "# HELP x Help with \\\\ and\\nnewline \"quoted\".\n"
            "# TYPE x gauge\n"
            "x{path=\"C:\\\\dir\\n\\\"q\\\"\"} 1\n");
}

TEST(Metrics, ValuesAndValidation) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(-3), "-3");
  EXPECT_EQ(format_metric_value(0.25), "0.25");
  EXPECT_EQ(format_metric_value(1e20), "1e+20");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");

  MetricsRegistry r;
  EXPECT_EQ(r.declare("1bad", MetricType::kGauge, "").code(), core::Code::kInvalidArgument);
  EXPECT_EQ(r.declare("has-dash", MetricType::kGauge, "").code(), core::Code::kInvalidArgument);
  ASSERT_TRUE(r.declare("ok:name_1", MetricType::kGauge, "h").ok());
  EXPECT_TRUE(r.declare("ok:name_1", MetricType::kGauge, "h2").ok());
  EXPECT_EQ(r.declare("ok:name_1", MetricType::kCounter, "h").code(), core::Code::kInvalidArgument);
  EXPECT_EQ(r.set("undeclared", {}, 1).code(), core::Code::kNotFound);
  EXPECT_EQ(r.set("ok:name_1", {{"__reserved", "x"}}, 1).code(), core::Code::kInvalidArgument);
  EXPECT_EQ(r.set("ok:name_1", {{"bad-label", "x"}}, 1).code(), core::Code::kInvalidArgument);
  EXPECT_EQ(r.add("ok:name_1", {}, 1).code(), core::Code::kInvalidArgument);  // a gauge
  ASSERT_TRUE(r.declare("c_total", MetricType::kCounter, "h").ok());
  EXPECT_EQ(r.add("c_total", {}, -1).code(), core::Code::kInvalidArgument);
}

ServiceMetrics full_service(const std::string& name) {
  ServiceMetrics s;
  s.service = name;
  s.last_success_timestamp = 1'700'000'000;
  s.last_duration_s = 42.5;
  s.last_size_bytes = 10'737'418'240;
  s.runs_success = 10;
  s.runs_failure = 2;
  s.rpo_s = 1800;
  s.rpo_objective_s = 86400;
  s.repository_size_bytes = 5e9;
  s.drill_last_success_timestamp = 1'699'990'000;
  s.drill_rto_s = 310;
  s.drill_rpo_s = 3600;
  return s;
}

TEST(Metrics, FleetMetricsReplacePerService) {
  MetricsRegistry r;
  update_fleet_metrics(r, full_service("db"));
  ServiceMetrics web;
  web.service = "web";
  web.up = false;
  update_fleet_metrics(r, web);
  std::string text = r.render();
  EXPECT_NE(text.find("cairn_backup_last_success_timestamp_seconds{service=\"db\"} 1700000000\n"),
            std::string::npos);
  EXPECT_NE(text.find("cairn_backup_runs_total{result=\"failure\",service=\"db\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("cairn_backup_runs_total{result=\"cancelled\",service=\"web\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("cairn_up{service=\"web\"} 0\n"), std::string::npos);
  EXPECT_EQ(text.find("cairn_rpo_seconds{service=\"web\"}"), std::string::npos);  // unknown
  for (const char* name :
       {"cairn_backup_last_success_timestamp_seconds", "cairn_backup_duration_seconds",
        "cairn_backup_size_bytes", "cairn_backup_runs_total", "cairn_rpo_seconds",
        "cairn_rpo_objective_seconds", "cairn_repository_size_bytes",
        "cairn_drill_last_success_timestamp_seconds", "cairn_drill_rto_seconds",
        "cairn_drill_rpo_seconds", "cairn_up"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
    EXPECT_NE(text.find(std::string(name) + "{"), std::string::npos) << name;
  }
  // Updating a service replaces all its series; removing it drops them.
  ServiceMetrics db2;
  db2.service = "db";
  update_fleet_metrics(r, db2);
  text = r.render();
  EXPECT_EQ(text.find("cairn_rpo_seconds{service=\"db\"}"), std::string::npos);
  EXPECT_NE(text.find("cairn_up{service=\"db\"} 1\n"), std::string::npos);
  ASSERT_TRUE(r.replace_series("service", "db", {}).ok());
  EXPECT_EQ(r.render().find("service=\"db\""), std::string::npos);
}

// Runs `promtool check metrics` with `text` on stdin.
void expect_promtool_accepts(const std::string& text) {
  const char* kPromtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(kPromtool)) GTEST_SKIP() << kPromtool << " is not installed";
  testing::TempDir dir;
  std::ofstream(dir / "metrics.txt") << text;
  core::UniqueFd in(::open((dir / "metrics.txt").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(in.valid());
  core::ProcessOptions opt;
  opt.stdin_fd = in.get();
  auto proc = core::Subprocess::start({kPromtool, "check", "metrics"}, opt);
  ASSERT_TRUE(proc.ok()) << proc.status().to_string();
  uint8_t buf[4096];
  std::string out;
  for (;;) {
    auto n = (*proc)->read(buf, sizeof buf);
    ASSERT_TRUE(n.ok());
    if (*n == 0) break;
    out.append(reinterpret_cast<char*>(buf), *n);
  }
  core::Status st = (*proc)->wait();
  EXPECT_TRUE(st.ok()) << st.to_string() << "\n" << out << "\n" << text;
}

TEST(Metrics, PromtoolAcceptsFleetMetrics) {
  ServiceMetrics odd = full_service("name with \"quotes\" and \\ and\nnewline");
  std::string text = render_fleet_metrics({full_service("db"), full_service("web"), odd});
  expect_promtool_accepts(text);
}

TEST(Metrics, ServerServesMetricsAndHealth) {
  MetricsRegistry r;
  update_fleet_metrics(r, full_service("db"));
  std::atomic<bool> healthy{true};
  auto server = MetricsServer::start(
      {"127.0.0.1", 0}, [&r] { return r.render(); },
      [&healthy] {
        return healthy ? core::ok_status() : core::io_error("state database unreadable");
      });
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  ASSERT_GT((*server)->port(), 0);
  httplib::Client client("127.0.0.1", (*server)->port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, r.render());
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  res = client.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
  healthy = false;
  res = client.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->body, "state database unreadable\n");
  res = client.Get("/nothing");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);

  // A second server on the same port cannot bind.
  auto clash = MetricsServer::start({"127.0.0.1", (*server)->port()}, [] { return ""; });
  EXPECT_EQ(clash.status().code(), core::Code::kIOError);

  (*server)->stop();
  (*server)->stop();  // idempotent
  EXPECT_FALSE(client.Get("/metrics"));
}

TEST(Metrics, ServerStopsRightAfterStart) {
  for (int i = 0; i < 20; ++i) {
    auto server = MetricsServer::start({"127.0.0.1", 0}, [] { return ""; });
    ASSERT_TRUE(server.ok());
    (*server)->stop();
  }
}

}  // namespace
}  // namespace cairn::daemon
