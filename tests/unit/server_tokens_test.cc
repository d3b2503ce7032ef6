// API tokens on a real state database.
#include <gtest/gtest.h>

#include "server/tokens.h"
#include "unit/test_util.h"

namespace cairn::server {
namespace {

using std::chrono::seconds;
daemon::Time at(int64_t s) { return daemon::Time(seconds(s)); }

struct Fixture {
  testing::TempDir dir;
  daemon::StateStore store = std::move(daemon::StateStore::open(dir / "state.db")).value();
  TokenService tokens{store};
};

CreatedToken make(TokenService& t, const std::string& name, Role role, std::vector<std::string> services,
                  std::optional<seconds> expires = std::nullopt) {
  NewToken req{name, role, std::move(services), expires, "test"};
  auto c = t.create(req, at(1000));
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return std::move(c).value();
}

TEST(ServerTokens, CreateThenAuthenticate) {
  Fixture f;
  auto c = make(f.tokens, "alice", Role::kRestorer, {"shop"});
  EXPECT_TRUE(c.token.starts_with("cairn_" + c.record.id + "_"));
  EXPECT_EQ(c.token.size(), 6 + 16 + 1 + 64u);
  auto p = f.tokens.authenticate(c.token, at(1001));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->name, "alice");
  EXPECT_EQ(p->role, Role::kRestorer);
  EXPECT_EQ(p->services, std::vector<std::string>{"shop"});
  EXPECT_EQ(p->token_id, c.record.id);
}

TEST(ServerTokens, OnlyTheHashIsStored) {
  Fixture f;
  auto c = make(f.tokens, "alice", Role::kViewer, {"*"});
  std::string secret = c.token.substr(c.token.rfind('_') + 1);
  auto rec = f.store.token(c.record.id);
  ASSERT_TRUE(rec.ok() && *rec);
  EXPECT_NE((*rec)->secret_hash, secret);
  EXPECT_EQ((*rec)->secret_hash.size(), 64u);
  // The database file does not contain the secret anywhere.
  std::string db = testing::read_file(f.dir / "state.db") + testing::read_file(f.dir / "state.db-wal");
  EXPECT_EQ(db.find(secret), std::string::npos);
}

TEST(ServerTokens, BadTokensAreRefused) {
  Fixture f;
  auto c = make(f.tokens, "alice", Role::kViewer, {"shop"});
  std::string wrong_secret = c.token;
  wrong_secret.back() = wrong_secret.back() == '0' ? '1' : '0';
  std::string unknown_id = c.token;
  unknown_id[6] = unknown_id[6] == '0' ? '1' : '0';
  for (const std::string& t : {std::string(""), std::string("cairn_"), std::string("Bearer x"), wrong_secret,
                               unknown_id, c.token + "0", c.token.substr(0, c.token.size() - 1),
                               std::string("cairn_ZZZZZZZZZZZZZZZZ_") + std::string(64, 'a')}) {
    auto p = f.tokens.authenticate(t, at(1001));
    EXPECT_FALSE(p.ok()) << t;
    EXPECT_EQ(p.status().code(), core::Code::kPermissionDenied) << t;
  }
}

TEST(ServerTokens, ExpiryAndRevocation) {
  Fixture f;
  auto c = make(f.tokens, "ci", Role::kOperator, {"shop"}, seconds(60));
  EXPECT_TRUE(f.tokens.authenticate(c.token, at(1059)).ok());
  auto expired = f.tokens.authenticate(c.token, at(1060));
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.status().message().find("expired"), std::string::npos);

  auto d = make(f.tokens, "bob", Role::kViewer, {"shop"});
  auto e = make(f.tokens, "bob", Role::kViewer, {"blog"});
  ASSERT_TRUE(f.tokens.revoke("bob", at(1100)).ok());  // by name: both
  EXPECT_FALSE(f.tokens.authenticate(d.token, at(1101)).ok());
  EXPECT_FALSE(f.tokens.authenticate(e.token, at(1101)).ok());
  EXPECT_EQ(f.tokens.revoke("bob", at(1102)).code(), core::Code::kNotFound);  // nothing active left
  EXPECT_EQ(f.tokens.revoke("nobody", at(1102)).code(), core::Code::kNotFound);
  auto list = f.tokens.list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  for (const auto& t : *list) EXPECT_EQ(t.revoked_at.has_value(), t.name == "bob") << t.name;
}

TEST(ServerTokens, LastUsedIsRecorded) {
  Fixture f;
  auto c = make(f.tokens, "alice", Role::kViewer, {"shop"});
  ASSERT_TRUE(f.tokens.authenticate(c.token, at(2000)).ok());
  auto rec = f.store.token(c.record.id);
  ASSERT_TRUE(rec.ok() && *rec);
  EXPECT_EQ((*rec)->last_used_at, at(2000));
}

TEST(ServerTokens, InvalidRequests) {
  Fixture f;
  EXPECT_FALSE(f.tokens.create({"", Role::kViewer, {"shop"}, std::nullopt, ""}, at(1)).ok());
  EXPECT_FALSE(f.tokens.create({"x", Role::kViewer, {}, std::nullopt, ""}, at(1)).ok());
  EXPECT_FALSE(f.tokens.create({"x", Role::kViewer, {"a,b"}, std::nullopt, ""}, at(1)).ok());
  EXPECT_FALSE(f.tokens.create({"x", Role::kViewer, {"a"}, seconds(0), ""}, at(1)).ok());
}

}  // namespace
}  // namespace cairn::server
