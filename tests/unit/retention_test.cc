#include <gtest/gtest.h>

#include <map>

#include "policy/retention.h"

namespace cairn::policy {
namespace {

repo::SnapshotRef snap(const std::string& id, const std::string& time, std::vector<std::string> tags = {}) {
  repo::SnapshotRef s;
  s.id = id;
  auto t = repo::parse_time(time);
  EXPECT_TRUE(t.has_value()) << time;
  s.snapshot.time = *t;
  s.snapshot.tags = std::move(tags);
  return s;
}

// Ids of the kept snapshots, newest first.
std::vector<std::string> kept(const std::vector<repo::SnapshotRef>& group, const RetentionPolicy& p) {
  auto r = apply_retention(group, p);
  EXPECT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> ids;
  for (const auto& d : *r)
    if (d.keep) ids.push_back(d.snapshot.id);
  return ids;
}

TEST(Retention, BucketsUseTheSnapshotsOwnOffset) {
  // 00:30 local on the 25th is still the 24th in UTC: the local day counts.
  auto t = repo::parse_time("2026-10-25T00:30:00+02:00").value();
  EXPECT_EQ(bucket(t, "day"), "2026-10-25");
  EXPECT_EQ(bucket(t, "hour"), "2026-10-25 00");
  // ISO weeks across a year boundary.
  EXPECT_EQ(bucket(repo::parse_time("2020-12-31T12:00:00Z").value(), "week"), "2020-W53");
  EXPECT_EQ(bucket(repo::parse_time("2021-01-03T12:00:00Z").value(), "week"), "2020-W53");
  EXPECT_EQ(bucket(repo::parse_time("2021-01-04T12:00:00Z").value(), "week"), "2021-W01");
  EXPECT_EQ(bucket(repo::parse_time("2024-02-29T23:59:59Z").value(), "month"), "2024-02");
  EXPECT_EQ(bucket(repo::parse_time("2024-12-31T23:59:59-01:00").value(), "year"), "2024");
}

TEST(Retention, DailyKeepsTheNewestOfEachOfTheLastNDays) {
  std::vector<repo::SnapshotRef> g = {
      snap("a1", "2026-11-20T08:00:00Z"), snap("a2", "2026-11-20T20:00:00Z"),
      snap("b1", "2026-11-21T08:00:00Z"), snap("c1", "2026-11-23T08:00:00Z"),  // 22nd has none
      snap("c2", "2026-11-23T09:00:00Z"), snap("d1", "2026-11-24T01:00:00Z")};
  RetentionPolicy p;
  p.daily = 3;
  EXPECT_EQ(kept(g, p), (std::vector<std::string>{"d1", "c2", "b1"}));  // empty days don't count
  p.daily = 10;
  EXPECT_EQ(kept(g, p), (std::vector<std::string>{"d1", "c2", "b1", "a2"}));
}

TEST(Retention, DstChangeDoesNotSplitOrMergeDays) {
  // Europe/Berlin, 2026-03-29: clocks jump from +01:00 to +02:00 at 02:00.
  std::vector<repo::SnapshotRef> g = {
      snap("before", "2026-03-29T01:30:00+01:00"), snap("after", "2026-03-29T03:30:00+02:00"),
      snap("prev", "2026-03-28T23:30:00+01:00")};
  RetentionPolicy p;
  p.daily = 2;
  EXPECT_EQ(kept(g, p), (std::vector<std::string>{"after", "prev"}));
  // Autumn: 2026-10-25 02:30 happens twice (+02:00, then +01:00); one day, one hour bucket each.
  std::vector<repo::SnapshotRef> h = {snap("first", "2026-10-25T02:30:00+02:00"),
                                      snap("second", "2026-10-25T02:30:00+01:00")};
  RetentionPolicy hourly;
  hourly.hourly = 5;
  EXPECT_EQ(kept(h, hourly), (std::vector<std::string>{"second"}));  // same local hour "02"
}

TEST(Retention, LeapDayAndMonthlyYearly) {
  std::vector<repo::SnapshotRef> g = {
      snap("jan", "2024-01-31T10:00:00Z"), snap("feb28", "2024-02-28T10:00:00Z"),
      snap("feb29", "2024-02-29T10:00:00Z"), snap("mar", "2024-03-01T10:00:00Z"),
      snap("y23", "2023-12-31T10:00:00Z")};
  RetentionPolicy p;
  p.monthly = 3;
  EXPECT_EQ(kept(g, p), (std::vector<std::string>{"mar", "feb29", "jan"}));
  RetentionPolicy y;
  y.yearly = 5;
  EXPECT_EQ(kept(g, y), (std::vector<std::string>{"mar", "y23"}));
  RetentionPolicy within;
  within.within = "1m";  // 2024-03-01 minus one month = 2024-02-01
  EXPECT_EQ(kept(g, within), (std::vector<std::string>{"mar", "feb29", "feb28"}));
}

TEST(Retention, GfsCombinationWithReasonsAndTags) {
  // 40 daily snapshots at 03:00 UTC from 2026-01-01 (a Thursday).
  std::vector<repo::SnapshotRef> g;
  for (int d = 0; d < 40; ++d) {
    char buf[64];
    snprintf(buf, sizeof buf, "2026-%02d-%02dT03:00:00Z", d < 31 ? 1 : 2, d < 31 ? d + 1 : d - 30);
    g.push_back(snap("s" + std::to_string(d), buf, d == 3 ? std::vector<std::string>{"release"} : std::vector<std::string>{}));
  }
  RetentionPolicy p;
  p.daily = 7;    // s39..s33 (Feb 9..3)
  p.weekly = 4;   // newest of ISO weeks: W06 (s39, Feb 9 is Monday), W05 (s38? no: Feb 8 Sunday = s38), W04 (s31 Feb 1), W03 (s24 Jan 25)
  p.monthly = 2;  // s39 (Feb), s30 (Jan 31)
  p.keep_tags = {"release"};
  auto r = apply_retention(g, p).value();
  std::map<std::string, std::vector<std::string>> reasons;
  for (const auto& d : r)
    if (d.keep) reasons[d.snapshot.id] = d.reasons;
  EXPECT_EQ(reasons["s39"], (std::vector<std::string>{"daily", "weekly", "monthly"}));
  EXPECT_EQ(reasons["s38"], (std::vector<std::string>{"daily", "weekly"}));
  EXPECT_EQ(reasons["s31"], (std::vector<std::string>{"weekly"}));
  EXPECT_EQ(reasons["s24"], (std::vector<std::string>{"weekly"}));
  EXPECT_EQ(reasons["s30"], (std::vector<std::string>{"monthly"}));
  EXPECT_EQ(reasons["s3"], (std::vector<std::string>{"tag release"}));
  EXPECT_EQ(reasons.size(), 7u + 2u + 1u + 1u);  // 7 daily, +s31, s24 weekly, +s30 monthly, +s3 tag
}

TEST(Retention, LastAndBadInput) {
  std::vector<repo::SnapshotRef> g = {snap("a", "2026-01-01T00:00:00Z"), snap("b", "2026-01-01T00:00:00Z"),
                                      snap("c", "2026-01-02T00:00:00Z")};
  RetentionPolicy p;
  p.last = 2;
  EXPECT_EQ(kept(g, p), (std::vector<std::string>{"c", "b"}));  // equal times: ordered by id
  p.last = -1;
  EXPECT_FALSE(apply_retention(g, p).ok());
  RetentionPolicy w;
  w.within = "7x";
  EXPECT_FALSE(apply_retention(g, w).ok());
  w.within = "d";
  EXPECT_FALSE(apply_retention(g, w).ok());
  EXPECT_TRUE(RetentionPolicy{}.empty());
  EXPECT_TRUE(apply_retention({}, p).status().code() == core::Code::kInvalidArgument);
}

TEST(Retention, GroupKeys) {
  repo::Snapshot s;
  s.hostname = "db-1";
  s.service = "shop";
  s.paths = {"/a", "/b"};
  s.tags = {"y", "x"};
  EXPECT_EQ(group_key(s, "host,service,paths").value(), "host=db-1 service=shop paths=/a,/b");
  EXPECT_EQ(group_key(s, "tags").value(), "tags=x,y");
  EXPECT_EQ(group_key(s, "").value(), "");
  EXPECT_FALSE(group_key(s, "hots").ok());
}

}  // namespace
}  // namespace cairn::policy
