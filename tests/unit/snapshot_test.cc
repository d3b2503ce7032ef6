#include "repo/snapshot.h"

#include <gtest/gtest.h>

namespace cairn::repo {
namespace {

Snapshot sample() {
  Snapshot s;
  s.time = *parse_time("2026-11-26T10:00:00Z");
  s.hostname = "db1";
  s.paths = {"/srv/data", "/PG_VERSION"};
  s.excludes = {"*.tmp"};
  return s;
}

TEST(Snapshot, PlainNamesStayJsonStrings) {
  Snapshot s = sample();
  auto j = s.to_json();
  EXPECT_EQ(j["paths"], nlohmann::json({"/srv/data", "/PG_VERSION"}));
  EXPECT_FALSE(j.contains("paths_b64"));
  auto back = Snapshot::from_json(core::as_bytes(j.dump())).value();
  EXPECT_EQ(back.paths, s.paths);
  EXPECT_EQ(back.excludes, s.excludes);
}

// A top-level name of a base backup (or a path given to `backup`) that is
// not UTF-8 cannot be a JSON string: the list is stored base64-encoded and
// reads back byte for byte.
TEST(Snapshot, NamesThatAreNotUtf8RoundTripAsBase64) {
  Snapshot s = sample();
  s.paths.push_back("/notes-\xe9.txt");
  s.excludes.push_back("/x\xff*");
  auto j = s.to_json();
  EXPECT_FALSE(j.contains("paths"));
  ASSERT_TRUE(j.contains("paths_b64"));
  EXPECT_EQ(j["paths_b64"].size(), 3u);
  auto back = Snapshot::from_json(core::as_bytes(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->paths, s.paths);
  EXPECT_EQ(back->excludes, s.excludes);

  j["paths_b64"][0] = "***";
  auto bad = Snapshot::from_json(core::as_bytes(j.dump()));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), core::Code::kCorruption);
}

}  // namespace
}  // namespace cairn::repo
