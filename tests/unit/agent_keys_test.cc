// Write-only agent keys (repo/agent.h): what an agent writes, password
// holders read; the agent reads nothing. Locally and through the REST
// endpoint with an agent token.
#include <gtest/gtest.h>

#include "crypto/crypto.h"
#include "repo/agent.h"
#include "repo/checker.h"
#include "repo/repository.h"
#include "storage/local_backend.h"
#include "storage/memory_backend.h"
#include "storage/rest/rest_backend.h"
#include "storage/rest_fixture.h"
#include "test_util.h"

namespace cairn::repo {
namespace {

using core::Code;
using storage::FileType;

TEST(AgentCrypto, SealedBoxRoundTripAndWrongPair) {
  ASSERT_TRUE(crypto::init().ok());
  auto pair = crypto::box_keypair();
  EXPECT_EQ(crypto::box_public_key(pair.secret_key), pair.public_key);
  core::Bytes msg = core::to_bytes("data key");
  core::Bytes sealed = crypto::box_seal(msg, pair.public_key);
  EXPECT_EQ(sealed.size(), msg.size() + crypto::kBoxSealOverhead);
  auto opened = crypto::box_seal_open(sealed, pair);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, msg);
  EXPECT_EQ(crypto::box_seal_open(sealed, crypto::box_keypair()).status().code(),
            Code::kCorruption);
  sealed[sealed.size() - 1] ^= 1;
  EXPECT_EQ(crypto::box_seal_open(sealed, pair).status().code(), Code::kCorruption);
}

TEST(AgentCrypto, AgentFilesOpenOnlyWithTheRepositoryPair) {
  ASSERT_TRUE(crypto::init().ok());
  auto pair = crypto::box_keypair();
  AgentSession s = AgentSession::start(pair.public_key);
  core::Bytes file = s.seal_file(core::to_bytes("payload"));
  EXPECT_TRUE(looks_like_agent_file(file));
  DataKeyOpener right({pair});
  auto plain = right.open_file(file);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  EXPECT_EQ(*plain, core::to_bytes("payload"));
  DataKeyOpener wrong({crypto::box_keypair()});
  EXPECT_FALSE(wrong.open_file(file).ok());
  file[kAgentFileOverhead + 3] ^= 1;  // the sealed payload
  EXPECT_FALSE(right.open_file(file).ok());
}

// Writes what a backup writes (data and tree blobs, index, snapshot) through `repo`.
std::string write_backup(Repository& repo, const core::Bytes& data, bool* deduped) {
  Id id = repo.blob_id(data);
  auto added = repo.save_blob(BlobType::kData, id, data);
  EXPECT_TRUE(added.ok() && *added);
  auto again = repo.save_blob(BlobType::kData, id, data);  // same session: deduplicated
  *deduped = again.ok() && !*again;
  Tree tree;
  Node node;
  node.name = "file";
  node.type = NodeType::kFile;
  node.size = data.size();
  node.content = {id};
  tree.nodes.push_back(node);
  auto tree_id = repo.save_tree(tree);
  EXPECT_TRUE(tree_id.ok());
  EXPECT_TRUE(repo.flush().ok());
  Snapshot s;
  s.time = now_time();
  s.hostname = "agent-host";
  s.service = "shop";
  s.paths = {"/file"};
  s.tree = *tree_id;
  auto snap = repo.save_snapshot(s);
  EXPECT_TRUE(snap.ok()) << snap.status().to_string();
  return snap.ok() ? *snap : "";
}

void expect_reads_nothing(Repository& agent, const std::string& snap_id, const Id& blob) {
  EXPECT_TRUE(agent.is_agent());
  EXPECT_EQ(agent.list_snapshots().status().code(), Code::kPermissionDenied);
  EXPECT_EQ(agent.load_file(FileType::kSnapshot, snap_id).status().code(), Code::kPermissionDenied);
  EXPECT_FALSE(agent.load_blob(blob).ok());
  EXPECT_EQ(agent.require_full_key("forget").code(), Code::kPermissionDenied);
  EXPECT_EQ(agent.add_key("x", testing::fast_kdf()).status().code(), Code::kPermissionDenied);
  EXPECT_EQ(agent.remove_key("0000").code(), Code::kPermissionDenied);
}

void expect_password_reads(std::shared_ptr<storage::Backend> backend, const std::string& snap_id,
                           const core::Bytes& data) {
  auto full = Repository::open(backend, "pw");
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  ASSERT_TRUE((*full)->load_index().ok());
  auto snaps = (*full)->list_snapshots();
  ASSERT_TRUE(snaps.ok());
  bool found = false;
  for (const auto& s : *snaps) {
    if (s.id != snap_id) continue;
    found = true;
    EXPECT_EQ(s.snapshot.hostname, "agent-host");
    auto tree = (*full)->load_tree(s.snapshot.tree);
    ASSERT_TRUE(tree.ok()) << tree.status().to_string();
    ASSERT_EQ(tree->nodes.size(), 1u);
    auto blob = (*full)->load_blob(tree->nodes[0].content.at(0));
    ASSERT_TRUE(blob.ok()) << blob.status().to_string();
    EXPECT_EQ(*blob, data);
  }
  EXPECT_TRUE(found) << "agent snapshot " << snap_id << " not listed";
}

TEST(AgentKeys, AgentWritesPasswordReadsAgentReadsNothing) {
  auto backend = std::make_shared<storage::MemoryBackend>();
  auto repo = testing::make_repo(backend);
  std::string secret = generate_key_file_secret();
  auto id = repo->add_agent_key(secret, {}, SecretKind::kKeyFile);
  ASSERT_TRUE(id.ok()) << id.status().to_string();
  auto keys = repo->list_keys();
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);

  auto agent = Repository::open(backend, secret);
  ASSERT_TRUE(agent.ok()) << agent.status().to_string();
  core::Bytes data = testing::random_data(3 << 20, 7);
  bool deduped = false;
  std::string snap = write_backup(**agent, data, &deduped);
  EXPECT_TRUE(deduped);
  expect_reads_nothing(**agent, snap, (*agent)->blob_id(data));
  expect_password_reads(backend, snap, data);
  // Readers with the password verify every agent pack.
  auto full = Repository::open(backend, "pw");
  ASSERT_TRUE(full.ok());
  ASSERT_TRUE((*full)->load_index().ok());
  CheckOptions copt;
  copt.read_data = true;
  auto report = check(**full, copt);
  ASSERT_TRUE(report.ok()) << report.status().to_string();
  EXPECT_TRUE(report->errors.empty()) << report->errors.front();
}

TEST(AgentKeys, EveryAgentKeySharesOneRepositoryPairAndPasswordAgentKeysWork) {
  auto backend = std::make_shared<storage::MemoryBackend>();
  auto repo = testing::make_repo(backend);
  ASSERT_TRUE(repo->add_agent_key("agent pw 1", testing::fast_kdf(), SecretKind::kPassword).ok());
  auto reopened = Repository::open(backend, "pw");
  ASSERT_TRUE(reopened.ok());
  ASSERT_TRUE(
      (*reopened)->add_agent_key("agent pw 2", testing::fast_kdf(), SecretKind::kPassword).ok());
  auto a1 = Repository::open(backend, "agent pw 1");
  auto a2 = Repository::open(backend, "agent pw 2");
  ASSERT_TRUE(a1.ok() && a2.ok());
  bool d = false;
  core::Bytes data1 = testing::random_data(1000, 1), data2 = testing::random_data(1000, 2);
  std::string s1 = write_backup(**a1, data1, &d);
  std::string s2 = write_backup(**a2, data2, &d);
  expect_password_reads(backend, s1, data1);
  expect_password_reads(backend, s2, data2);
  EXPECT_EQ(Repository::open(backend, "agent pw 3").status().code(), Code::kWrongPassword);
}

TEST(AgentKeys, ThroughTheRestEndpointWithAnAgentToken) {
  testing::TempDir dir;
  auto local = std::make_shared<storage::LocalBackend>(dir / "repo");
  auto repo = testing::make_repo(local);
  std::string secret = generate_key_file_secret();
  ASSERT_TRUE(repo->add_agent_key(secret, {}, SecretKind::kKeyFile).ok());
  storage::resttest::RestServer server({{"shop", local}});
  std::string token = server.add_token("shop-agent", server::Role::kAgent, {"shop"});
  auto rest = std::make_shared<storage::RestBackend>(server.options("shop", token));

  auto agent = Repository::open(rest, secret);
  ASSERT_TRUE(agent.ok()) << agent.status().to_string();
  core::Bytes data = testing::random_data(20 << 20, 9);  // more than one pack
  bool deduped = false;
  std::string snap = write_backup(**agent, data, &deduped);
  ASSERT_FALSE(snap.empty());
  expect_reads_nothing(**agent, snap, (*agent)->blob_id(data));
  // The password does not help over an agent token: the endpoint refuses reads.
  auto full_over_rest = Repository::open(rest, "pw");
  ASSERT_TRUE(full_over_rest.ok()) << full_over_rest.status().to_string();
  EXPECT_EQ((*full_over_rest)->list_snapshots().status().code(), Code::kPermissionDenied);
  expect_password_reads(local, snap, data);
}

TEST(AgentKeys, DamagedSealedKeyIsCorruptionNamingThePack) {
  auto backend = std::make_shared<storage::MemoryBackend>();
  auto repo = testing::make_repo(backend);
  std::string secret = generate_key_file_secret();
  ASSERT_TRUE(repo->add_agent_key(secret, {}, SecretKind::kKeyFile).ok());
  auto agent = Repository::open(backend, secret);
  ASSERT_TRUE(agent.ok());
  core::Bytes data = testing::random_data(5000, 3);
  bool d = false;
  write_backup(**agent, data, &d);
  // Flip a byte of the blob's sealed data key in its pack.
  auto full = Repository::open(backend, "pw");
  ASSERT_TRUE(full.ok());
  ASSERT_TRUE((*full)->load_index().ok());
  auto loc = (*full)->index().lookup((*full)->blob_id(data));
  ASSERT_TRUE(loc);
  auto bytes = backend->load({FileType::kPack, loc->pack.hex()});
  ASSERT_TRUE(bytes.ok());
  (*bytes)[loc->entry.offset + 5] ^= 1;
  ASSERT_TRUE(backend->remove({FileType::kPack, loc->pack.hex()}).ok());
  ASSERT_TRUE(backend->save({FileType::kPack, loc->pack.hex()}, *bytes).ok());
  auto blob = (*full)->load_blob((*full)->blob_id(data));
  ASSERT_FALSE(blob.ok());
  EXPECT_EQ(blob.status().code(), Code::kCorruption) << blob.status().to_string();
  EXPECT_NE(blob.status().message().find(loc->pack.hex()), std::string::npos);
}

}  // namespace
}  // namespace cairn::repo
