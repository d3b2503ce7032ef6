// The repository endpoint's role model (server/repo_endpoint.h) through the
// real REST backend: what an agent token may and may not do.
#include "server/repo_endpoint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "crypto/crypto.h"
#include "storage/local_backend.h"
#include "storage/rest/rest_backend.h"
#include "storage/rest_fixture.h"
#include "test_util.h"

namespace cairn::server {
namespace {

using core::Bytes;
using core::Code;
using storage::FileType;
using storage::Handle;
using storage::RestBackend;

class RepoEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(crypto::init().ok());
    shop_ = std::make_shared<storage::LocalBackend>(dir_ / "shop");
    other_ = std::make_shared<storage::LocalBackend>(dir_ / "other");
    ASSERT_TRUE(shop_->create().ok());
    ASSERT_TRUE(other_->create().ok());
    ASSERT_TRUE(shop_->save({FileType::kConfig, "config"}, core::to_bytes("cfg")).ok());
    ASSERT_TRUE(other_->save({FileType::kConfig, "config"}, core::to_bytes("cfg")).ok());
    key_ = named(FileType::kKey, "key file");
    ASSERT_TRUE(shop_->save(key_.first, key_.second).ok());
    server_ = std::make_unique<storage::resttest::RestServer>(
        std::map<std::string, std::shared_ptr<storage::Backend>>{{"shop", shop_},
                                                                 {"other", other_}});
    admin_token_ = server_->add_token("root", Role::kAdmin, {"*"});
    agent_token_ = server_->add_token("shop-agent", Role::kAgent, {"shop"});
    agent2_token_ = server_->add_token("shop-agent-2", Role::kAgent, {"shop"});
    viewer_token_ = server_->add_token("viewer", Role::kViewer, {"shop"});
  }

  std::unique_ptr<RestBackend> client(const std::string& service, const std::string& token) {
    return std::make_unique<RestBackend>(server_->options(service, token));
  }

  // An object named by the SHA-256 of its bytes, as the repository writes them.
  static std::pair<Handle, Bytes> named(FileType type, const std::string& text) {
    Bytes b = core::to_bytes(text);
    return {Handle{type, core::hex_encode(crypto::sha256(b))}, b};
  }

  testing::TempDir dir_;
  std::shared_ptr<storage::LocalBackend> shop_, other_;
  std::pair<Handle, Bytes> key_;
  std::unique_ptr<storage::resttest::RestServer> server_;
  std::string admin_token_, agent_token_, agent2_token_, viewer_token_;
};

TEST_F(RepoEndpointTest, AgentAddsObjectsOfEveryWritableType) {
  auto agent = client("shop", agent_token_);
  for (FileType t : {FileType::kPack, FileType::kIndex, FileType::kSnapshot, FileType::kLock,
                     FileType::kMaintenance, FileType::kWal}) {
    auto [h, bytes] = named(t, std::string("object of type ") + storage::type_dir(t));
    core::Status st = agent->save(h, bytes);
    EXPECT_TRUE(st.ok()) << h.to_string() << ": " << st.to_string();
    auto stored = shop_->load(h);
    ASSERT_TRUE(stored.ok()) << h.to_string();
    EXPECT_EQ(*stored, bytes);
  }
}

TEST_F(RepoEndpointTest, AgentOpensTheRepositoryButReadsNoData) {
  auto agent = client("shop", agent_token_);
  auto exists = agent->exists();
  ASSERT_TRUE(exists.ok()) << exists.status().to_string();
  EXPECT_TRUE(*exists);
  EXPECT_TRUE(agent->load({FileType::kConfig, "config"}).ok());
  EXPECT_TRUE(agent->load(key_.first).ok());
  int keys = 0;
  EXPECT_TRUE(agent->list(FileType::kKey, [&](const storage::FileInfo&) { ++keys; }).ok());
  EXPECT_EQ(keys, 1);
  EXPECT_TRUE(agent->list(FileType::kLock, [](const storage::FileInfo&) {}).ok());

  auto [h, bytes] = named(FileType::kPack, "pack bytes");
  ASSERT_TRUE(agent->save(h, bytes).ok());
  EXPECT_EQ(agent->load(h).status().code(), Code::kPermissionDenied);
  EXPECT_EQ(agent->load(h, 0, 4).status().code(), Code::kPermissionDenied);
  EXPECT_EQ(agent->stat(h).status().code(), Code::kPermissionDenied);
  for (FileType t : {FileType::kPack, FileType::kIndex, FileType::kSnapshot, FileType::kWal,
                     FileType::kMaintenance}) {
    EXPECT_EQ(agent->list(t, [](const storage::FileInfo&) {}).code(), Code::kPermissionDenied)
        << storage::type_dir(t);
  }
}

TEST_F(RepoEndpointTest, AgentDeletesNothingButItsOwnLocks) {
  auto agent = client("shop", agent_token_);
  auto [pack, pack_bytes] = named(FileType::kPack, "pack");
  ASSERT_TRUE(agent->save(pack, pack_bytes).ok());
  EXPECT_EQ(agent->remove(pack).code(), Code::kPermissionDenied);
  EXPECT_EQ(agent->remove(key_.first).code(), Code::kPermissionDenied);
  auto [snap, snap_bytes] = named(FileType::kSnapshot, "snapshot");
  ASSERT_TRUE(shop_->save(snap, snap_bytes).ok());
  EXPECT_EQ(agent->remove(snap).code(), Code::kPermissionDenied);
  EXPECT_TRUE(shop_->load(pack).ok());
  EXPECT_TRUE(shop_->load(snap).ok());
  EXPECT_TRUE(shop_->load(key_.first).ok());

  // Its own lock: yes. Another writer's lock (another agent's, the admin's): no.
  auto [mine, mine_bytes] = named(FileType::kLock, "my lock");
  ASSERT_TRUE(agent->save(mine, mine_bytes).ok());
  auto [theirs, theirs_bytes] = named(FileType::kLock, "their lock");
  ASSERT_TRUE(client("shop", agent2_token_)->save(theirs, theirs_bytes).ok());
  EXPECT_EQ(agent->remove(theirs).code(), Code::kPermissionDenied);
  EXPECT_TRUE(shop_->load(theirs).ok());
  EXPECT_TRUE(agent->remove(mine).ok());
  EXPECT_EQ(shop_->load(mine).status().code(), Code::kNotFound);
}

TEST_F(RepoEndpointTest, AgentCannotOverwriteNorPlantContent) {
  auto agent = client("shop", agent_token_);
  auto [h, bytes] = named(FileType::kSnapshot, "first");
  ASSERT_TRUE(agent->save(h, bytes).ok());
  EXPECT_EQ(agent->save(h, core::to_bytes("second")).code(), Code::kAlreadyExists);
  EXPECT_EQ(*shop_->load(h), bytes);
  // A name that is not the SHA-256 of the bytes could squat another object's name.
  auto [other, other_bytes] = named(FileType::kIndex, "real content");
  EXPECT_EQ(agent->save(other, core::to_bytes("garbage")).code(), Code::kInvalidArgument);
  EXPECT_EQ(shop_->load(other).status().code(), Code::kNotFound);
  // Nor config or keys.
  EXPECT_EQ(agent->save({FileType::kConfig, "config"}, core::to_bytes("x")).code(),
            Code::kPermissionDenied);
  auto [k, kb] = named(FileType::kKey, "new key");
  EXPECT_EQ(agent->save(k, kb).code(), Code::kPermissionDenied);
  EXPECT_EQ(shop_->load(k).status().code(), Code::kNotFound);
}

TEST_F(RepoEndpointTest, OtherServicesLookLikeUnknownOnes) {
  auto agent_other = client("other", agent_token_);
  auto agent_unknown = client("nope", agent_token_);
  for (auto* c : {agent_other.get(), agent_unknown.get()}) {
    auto exists = c->exists();
    ASSERT_TRUE(exists.ok()) << exists.status().to_string();
    EXPECT_FALSE(*exists);  // "no repository": the same answer for both
    auto [h, bytes] = named(FileType::kPack, "pack");
    EXPECT_EQ(c->save(h, bytes).code(), Code::kNotFound);
    EXPECT_EQ(c->list(FileType::kKey, [](const storage::FileInfo&) {}).code(), Code::kNotFound);
  }
  int other_packs = 0;
  ASSERT_TRUE(other_->list(FileType::kPack, [&](const storage::FileInfo&) { ++other_packs; }).ok());
  EXPECT_EQ(other_packs, 0);
}

TEST_F(RepoEndpointTest, OtherRolesAndBadTokensAreRefused) {
  auto [h, bytes] = named(FileType::kPack, "pack");
  EXPECT_EQ(client("shop", viewer_token_)->save(h, bytes).code(), Code::kPermissionDenied);
  EXPECT_EQ(client("shop", viewer_token_)->load(key_.first).status().code(),
            Code::kPermissionDenied);
  EXPECT_EQ(client("shop", "not-a-token")->save(h, bytes).code(), Code::kPermissionDenied);
  auto none = client("shop", "")->exists();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kPermissionDenied);
  EXPECT_NE(none.status().message().find("CAIRN_TOKEN"), std::string::npos);
  EXPECT_EQ(shop_->load(h).status().code(), Code::kNotFound);
}

TEST_F(RepoEndpointTest, AdminReadsAndDeletesEverything) {
  auto agent = client("shop", agent_token_);
  auto admin = client("shop", admin_token_);
  auto [h, bytes] = named(FileType::kPack, "pack");
  ASSERT_TRUE(agent->save(h, bytes).ok());
  auto loaded = admin->load(h);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(*loaded, bytes);
  int packs = 0;
  EXPECT_TRUE(admin->list(FileType::kPack, [&](const storage::FileInfo&) { ++packs; }).ok());
  EXPECT_EQ(packs, 1);
  EXPECT_TRUE(admin->remove(h).ok());
  EXPECT_EQ(shop_->load(h).status().code(), Code::kNotFound);
}

TEST_F(RepoEndpointTest, EveryRequestIsAudited) {
  auto agent = client("shop", agent_token_);
  auto [h, bytes] = named(FileType::kPack, "pack");
  ASSERT_TRUE(agent->save(h, bytes).ok());
  (void)agent->load(h);
  (void)client("other", agent_token_)->exists();
  auto lines = server_->audit_lines();
  auto has = [&](const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
  };
  EXPECT_TRUE(has("shop-agent repo.save shop " + h.to_string() + " ok"));
  EXPECT_TRUE(has("shop-agent repo.load shop " + h.to_string() + " denied"));
  EXPECT_TRUE(has("shop-agent repo.stat other config denied"));
}

TEST_F(RepoEndpointTest, RefusesBadNamesAndHugeBodies) {
  httplib::Client http("127.0.0.1", std::stoi(server_->endpoint().substr(17)));
  httplib::Headers auth = {{"Authorization", "Bearer " + admin_token_}};
  auto r = http.Get("/api/v1/repo/shop/keys/..%2F..%2Fetc", auth);
  ASSERT_TRUE(r);
  EXPECT_NE(r->status, 200);
  r = http.Get("/api/v1/repo/shop/keys/abc", auth);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = http.Get("/api/v1/repo/shop/bogus/", auth);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = http.Get("/api/v1/repo/shop/keys/" + key_.first.name, auth);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "key file");
  std::string name(64, 'a');
  r = http.Put("/api/v1/repo/shop/data/" + name, auth, std::string(1024, 'x'),
               "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201);  // admins may store any name (repair, tests)
  // A body over the limit is refused (by its declared length, before it is read).
  std::string huge(kMaxRepoObjectSize + 1, 'x');
  r = http.Put("/api/v1/repo/shop/data/" + std::string(64, 'b'), auth, huge,
               "application/octet-stream");
  if (r) {  // else the server closed the connection early
    EXPECT_EQ(r->status, 413);
  }
  EXPECT_EQ(shop_->load({FileType::kPack, std::string(64, 'b')}).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace cairn::server

namespace cairn::server {
namespace {

TEST(RepoEndpointHooksTest, MissingHooksFailClosed) {
  httplib::Server server;
  register_repo_endpoint(server, RepoEndpointHooks{});
  int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread t([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  httplib::Client http("127.0.0.1", port);
  auto r = http.Get("/api/v1/repo/shop/config", {{"Authorization", "Bearer anything"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  server.stop();
  t.join();
}

}  // namespace
}  // namespace cairn::server
