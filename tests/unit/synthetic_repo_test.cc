// Generator of a synthetic repository with many tiny packs, for measuring
// prune's memory on large repositories (bench/prune.sh --synthetic). Disabled
// in normal runs; enabled with --gtest_also_run_disabled_tests and
// CAIRN_SYNTH_REPO=/path (a folder that does not exist yet),
// CAIRN_SYNTH_PACKS=N (default 100000), CAIRN_SYNTH_PASSWORD.
//
// Layout: N packs of one 64-byte data blob each, written straight into the
// local repository layout (no fsync: this is a benchmark fixture), indexed by
// index files of 100k blobs; one snapshot whose single file uses every
// second blob, so prune finds half of the packs unused.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "repo/index.h"
#include "repo/pack.h"
#include "repo/repository.h"
#include "storage/backend.h"
#include "unit/test_util.h"

namespace cairn::repo {
namespace {

void write_raw(const std::string& path, core::ByteView data) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(out.good()) << path;
}

TEST(SyntheticRepo, DISABLED_ManyTinyPacks) {
  const char* root = std::getenv("CAIRN_SYNTH_REPO");
  ASSERT_NE(root, nullptr) << "set CAIRN_SYNTH_REPO";
  const char* n_env = std::getenv("CAIRN_SYNTH_PACKS");
  const size_t n = n_env ? std::strtoul(n_env, nullptr, 10) : 100000;
  const char* pw = std::getenv("CAIRN_SYNTH_PASSWORD");
  ASSERT_FALSE(std::filesystem::exists(root)) << root << " exists";
  ASSERT_TRUE(crypto::init().ok());

  auto backend = storage::open_backend(root);
  ASSERT_TRUE(backend.ok());
  auto repo =
      testing::make_repo(std::shared_ptr<storage::Backend>(std::move(*backend)), pw ? pw : "pw");
  const auto& key = repo->key();

  std::vector<PackContents> index;
  std::vector<Id> used;
  for (size_t i = 0; i < n; ++i) {
    core::Bytes plain = testing::random_data(64, i + 1);
    PackEntry e;
    e.id = repo->blob_id(plain);
    e.raw_length = 64;
    core::Bytes pack = crypto::seal(key.encrypt, plain);
    e.length = static_cast<uint32_t>(pack.size());
    core::Bytes header = encode_pack_header(key.encrypt, {e});
    pack.insert(pack.end(), header.begin(), header.end());
    Id pack_id = Id::from_digest(crypto::sha256(pack));
    std::string hex = pack_id.hex();
    write_raw(std::string(root) + "/data/" + hex.substr(0, 2) + "/" + hex, pack);
    index.push_back({pack_id, {e}});
    if (i % 2 == 0) used.push_back(e.id);
    if (index.size() == 100000 || i + 1 == n) {
      ASSERT_TRUE(repo->save_file(storage::FileType::kIndex, encode_index(index)).ok());
      index.clear();
    }
  }
  Tree t;
  Node f;
  f.name = "synthetic";
  f.size = used.size() * 64;
  f.content = used;
  t.nodes = {f};
  Snapshot s;
  s.time = now_time();
  s.paths = {"/synthetic"};
  s.tree = repo->save_tree(t).value();
  ASSERT_TRUE(repo->flush().ok());
  ASSERT_TRUE(repo->save_snapshot(s).ok());
}

}  // namespace
}  // namespace cairn::repo
