// The Backend contract (storage/backend.h), run against every backend.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crypto/crypto.h"
#include "storage/backend.h"
#include "storage/fault_backend.h"
#include "storage/local_backend.h"
#include "storage/memory_backend.h"
#include "storage/prefetch_backend.h"
#include "storage/rest_fixture.h"  // rest: the cairn server's repository endpoint
#include "storage/s3_backend.h"
#include "storage/s3_fixture.h"

namespace cairn::storage {
namespace {

using core::Bytes;
using core::Code;

struct BackendCase {
  std::string name;
  // Makes a backend; dir is a fresh empty temp folder it may use. nullptr
  // skips the test (a server the backend needs is not installed).
  std::function<std::shared_ptr<Backend>(const std::string& dir)> make;
};

// Names the case in gtest output instead of dumping its bytes.
void PrintTo(const BackendCase& c, std::ostream* os) { *os << c.name; }

std::string random_hex_id(std::mt19937_64& rng) {
  Bytes id(32);
  for (auto& b : id) b = static_cast<uint8_t>(rng());
  return core::hex_encode(id);
}

Bytes random_bytes(std::mt19937_64& rng, size_t n) {
  Bytes out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

class BackendConformance : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cairn-conf-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    backend_ = GetParam().make(dir_ + "/repo");
    if (!backend_) GTEST_SKIP() << s3test::s3rver_missing_message();
    core::Status created = backend_->create();
    ASSERT_TRUE(created.ok()) << created.to_string();
  }
  void TearDown() override {
    backend_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Handle pack(const std::string& name) { return Handle{FileType::kPack, name}; }

  // Every name listed for type t, with how often it was reported.
  std::map<std::string, int> listed(FileType t) {
    std::map<std::string, int> names;
    EXPECT_TRUE(backend_->list(t, [&](const FileInfo& fi) { ++names[fi.name]; }).ok());
    return names;
  }

  std::string dir_;
  std::shared_ptr<Backend> backend_;
  std::mt19937_64 rng_{42};
};

TEST_P(BackendConformance, SaveLoadWhole) {
  Handle h = pack(random_hex_id(rng_));
  Bytes data = random_bytes(rng_, 1000);
  ASSERT_TRUE(backend_->save(h, data).ok());
  auto r = backend_->load(h);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, data);
}

TEST_P(BackendConformance, RangedLoads) {
  Handle h = Handle{FileType::kIndex, random_hex_id(rng_)};
  Bytes data = random_bytes(rng_, 1000);
  ASSERT_TRUE(backend_->save(h, data).ok());
  struct Case {
    uint64_t offset, length;
    size_t want_begin, want_end;
  };
  for (const Case& c :
       {Case{0, 10, 0, 10}, Case{400, 200, 400, 600}, Case{990, 10, 990, 1000}, Case{0, 0, 0, 1000},
        Case{300, 0, 300, 1000}, Case{1000, 0, 1000, 1000}, Case{0, 1000, 0, 1000}}) {
    auto r = backend_->load(h, c.offset, c.length);
    ASSERT_TRUE(r.ok()) << c.offset << "+" << c.length << ": " << r.status().to_string();
    EXPECT_EQ(*r, Bytes(data.begin() + c.want_begin, data.begin() + c.want_end))
        << c.offset << "+" << c.length;
  }
}

// load_into reuses the caller's buffer: whatever it held before (longer or
// shorter), afterwards it holds exactly the range; a miss is kNotFound.
TEST_P(BackendConformance, LoadIntoReusesTheBufferAndHoldsExactlyTheRange) {
  Handle h = pack(random_hex_id(rng_));
  Bytes data = random_bytes(rng_, 1000);
  ASSERT_TRUE(backend_->save(h, data).ok());
  Bytes buffer(5000, 0xAB);
  ASSERT_TRUE(backend_->load_into(h, 100, 300, buffer).ok());
  EXPECT_EQ(buffer, Bytes(data.begin() + 100, data.begin() + 400));
  ASSERT_TRUE(backend_->load_into(h, 0, 0, buffer).ok());
  EXPECT_EQ(buffer, data);
  ASSERT_TRUE(backend_->load_into(h, 990, 10, buffer).ok());
  EXPECT_EQ(buffer, Bytes(data.begin() + 990, data.end()));
  core::Status past = backend_->load_into(h, 999, 2, buffer);
  EXPECT_EQ(past.code(), Code::kInvalidArgument) << past.to_string();
  core::Status missing = backend_->load_into(pack(random_hex_id(rng_)), 0, 0, buffer);
  EXPECT_EQ(missing.code(), Code::kNotFound) << missing.to_string();
}

// load_stream delivers exactly the range, in order; a sink's error stops it
// and comes back unchanged; misses and ranges past the end are load()'s errors.
TEST_P(BackendConformance, LoadStreamDeliversTheRangeInOrder) {
  Handle h = pack(random_hex_id(rng_));
  Bytes data = random_bytes(rng_, 3 << 20);
  ASSERT_TRUE(backend_->save(h, data).ok());
  for (auto [offset, length] :
       {std::pair<uint64_t, uint64_t>{0, 3 << 20}, {12345, 2 << 20}, {(3 << 20) - 1, 1}}) {
    Bytes got;
    core::Status st = backend_->load_stream(h, offset, length, [&](core::ByteView piece) {
      EXPECT_FALSE(piece.empty());
      got.insert(got.end(), piece.begin(), piece.end());
      return core::ok_status();
    });
    ASSERT_TRUE(st.ok()) << offset << "+" << length << ": " << st.to_string();
    EXPECT_TRUE(got == Bytes(data.begin() + static_cast<ptrdiff_t>(offset),
                             data.begin() + static_cast<ptrdiff_t>(offset + length)))
        << offset << "+" << length;
  }
  size_t calls = 0;
  core::Status stopped = backend_->load_stream(h, 0, data.size(), [&](core::ByteView) {
    ++calls;
    return core::corruption("blob 1 is damaged");
  });
  EXPECT_EQ(stopped.code(), Code::kCorruption) << stopped.to_string();
  EXPECT_EQ(calls, 1u);
  auto sink = [](core::ByteView) { return core::ok_status(); };
  EXPECT_EQ(backend_->load_stream(h, data.size() - 1, 2, sink).code(), Code::kInvalidArgument);
  EXPECT_EQ(backend_->load_stream(pack(random_hex_id(rng_)), 0, 10, sink).code(), Code::kNotFound);
}

TEST_P(BackendConformance, RangePastEndFails) {
  Handle h = pack(random_hex_id(rng_));
  ASSERT_TRUE(backend_->save(h, random_bytes(rng_, 100)).ok());
  for (auto [offset, length] : {std::pair<uint64_t, uint64_t>{0, 101},
                                {99, 2},
                                {101, 0},
                                {100, 1},
                                {1, UINT64_MAX},
                                {UINT64_MAX, 1}}) {
    auto r = backend_->load(h, offset, length);
    ASSERT_FALSE(r.ok()) << offset << "+" << length;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
    EXPECT_NE(r.status().message().find(h.name), std::string::npos) << r.status().to_string();
  }
}

TEST_P(BackendConformance, StatReportsSize) {
  Handle h = Handle{FileType::kSnapshot, random_hex_id(rng_)};
  ASSERT_TRUE(backend_->save(h, random_bytes(rng_, 777)).ok());
  auto r = backend_->stat(h);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->size, 777u);
  EXPECT_EQ(r->name, h.name);
}

TEST_P(BackendConformance, MissingIsNotFound) {
  Handle h = pack(random_hex_id(rng_));
  auto l = backend_->load(h);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), Code::kNotFound);
  auto ranged = backend_->load(h, 5, 5);
  ASSERT_FALSE(ranged.ok());
  EXPECT_EQ(ranged.status().code(), Code::kNotFound);
  auto s = backend_->stat(h);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kNotFound);
}

TEST_P(BackendConformance, SaveExistingRefusedAndKeepsOldBytes) {
  Handle h = Handle{FileType::kKey, random_hex_id(rng_)};
  Bytes first = core::to_bytes("first version");
  ASSERT_TRUE(backend_->save(h, first).ok());
  core::Status st = backend_->save(h, core::to_bytes("second, longer version"));
  EXPECT_EQ(st.code(), Code::kAlreadyExists) << st.to_string();
  auto r = backend_->load(h);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, first);
}

TEST_P(BackendConformance, SaveWithNoSyncIsAnOrdinarySaveToReaders) {
  // no_sync may only weaken crash durability (or be ignored): atomicity,
  // immutability, load, stat, list and remove stay the same.
  SaveOptions volatile_save;
  volatile_save.no_sync = true;
  Handle h = Handle{FileType::kLock, random_hex_id(rng_)};
  Bytes data = random_bytes(rng_, 300);
  ASSERT_TRUE(backend_->save_with(h, data, volatile_save).ok());
  auto r = backend_->load(h);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, data);
  EXPECT_EQ(backend_->stat(h).value().size, 300u);
  EXPECT_EQ(listed(FileType::kLock), (std::map<std::string, int>{{h.name, 1}}));
  core::Status again = backend_->save_with(h, core::to_bytes("other"), volatile_save);
  EXPECT_EQ(again.code(), Code::kAlreadyExists) << again.to_string();
  EXPECT_EQ(backend_->load(h).value(), data);
  ASSERT_TRUE(backend_->remove(h).ok());
  EXPECT_EQ(backend_->load(h).status().code(), Code::kNotFound);
  // Default options are a plain save.
  Handle p = pack(random_hex_id(rng_));
  ASSERT_TRUE(backend_->save_with(p, data, SaveOptions{}).ok());
  EXPECT_EQ(backend_->load(p).value(), data);
}

TEST_P(BackendConformance, SaveWithTheBodysSha256StoresIt) {
  // How the repository saves packs and index files: named by, and sent with,
  // the SHA-256 of their bytes (S3 signs it and sends it as a checksum).
  Bytes data = random_bytes(rng_, 70000);
  SaveOptions named;
  named.sha256_hex = core::hex_encode(crypto::sha256(data));
  Handle h = pack(named.sha256_hex);
  ASSERT_TRUE(backend_->save_with(h, data, named).ok());
  EXPECT_EQ(backend_->load(h).value(), data);
}

TEST_P(BackendConformance, RemoveThenLoadIsNotFound) {
  Handle h = Handle{FileType::kLock, random_hex_id(rng_)};
  ASSERT_TRUE(backend_->save(h, core::to_bytes("lock")).ok());
  ASSERT_TRUE(backend_->remove(h).ok());
  EXPECT_EQ(backend_->load(h).status().code(), Code::kNotFound);
  EXPECT_EQ(backend_->stat(h).status().code(), Code::kNotFound);
  EXPECT_TRUE(listed(FileType::kLock).empty());
  // A removed name can be saved again.
  EXPECT_TRUE(backend_->save(h, core::to_bytes("again")).ok());
}

TEST_P(BackendConformance, RemoveMissingSucceeds) {
  EXPECT_TRUE(backend_->remove(pack(random_hex_id(rng_))).ok());
  EXPECT_TRUE(backend_->remove(Handle{FileType::kSnapshot, random_hex_id(rng_)}).ok());
}

TEST_P(BackendConformance, ConfigObject) {
  auto before = backend_->exists();
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(*before);
  Handle config{FileType::kConfig, "config"};
  ASSERT_TRUE(backend_->save(config, core::to_bytes("{}")).ok());
  auto after = backend_->exists();
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(*after);
  EXPECT_EQ(listed(FileType::kConfig), (std::map<std::string, int>{{"config", 1}}));
  EXPECT_EQ(backend_->create().code(), Code::kAlreadyExists);
  auto r = backend_->load(config);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, core::to_bytes("{}"));
}

TEST_P(BackendConformance, ListsEveryObjectOnceWithoutLeakingAcrossTypes) {
  // 1500 objects: most are packs (spread over the fan-out folders).
  const std::vector<std::pair<FileType, int>> plan = {{FileType::kPack, 1000},
                                                      {FileType::kKey, 50},
                                                      {FileType::kIndex, 250},
                                                      {FileType::kSnapshot, 150},
                                                      {FileType::kLock, 50},
                                                      {FileType::kWal, 20}};
  std::map<FileType, std::map<std::string, uint64_t>> want;
  for (auto [type, count] : plan) {
    for (int i = 0; i < count; ++i) {
      std::string name = random_hex_id(rng_);
      uint64_t size = rng_() % 64;
      ASSERT_TRUE(backend_->save(Handle{type, name}, random_bytes(rng_, size)).ok());
      want[type][name] = size;
    }
  }
  std::set<std::string> prefixes;
  for (const auto& [name, size] : want[FileType::kPack]) prefixes.insert(name.substr(0, 2));
  EXPECT_GT(prefixes.size(), 200u);

  for (auto [type, count] : plan) {
    std::map<std::string, uint64_t> got;
    ASSERT_TRUE(backend_
                    ->list(type,
                           [&](const FileInfo& fi) {
                             EXPECT_TRUE(got.emplace(fi.name, fi.size).second)
                                 << "listed twice: " << fi.name;
                           })
                    .ok());
    EXPECT_EQ(got.size(), static_cast<size_t>(count)) << type_dir(type);
    EXPECT_TRUE(got == want[type]) << type_dir(type);
  }
  EXPECT_TRUE(listed(FileType::kConfig).empty());
}

TEST_P(BackendConformance, ConcurrentSaves) {
  constexpr int kThreads = 8, kPerThread = 200;
  std::vector<std::vector<std::string>> names(kThreads);
  for (auto& v : names) {
    for (int i = 0; i < kPerThread; ++i) v.push_back(random_hex_id(rng_));
  }
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (const std::string& name : names[t]) {
        if (!backend_->save(Handle{FileType::kPack, name}, core::as_bytes(name)).ok()) {
          ++failures[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;

  auto got = listed(FileType::kPack);
  EXPECT_EQ(got.size(), static_cast<size_t>(kThreads * kPerThread));
  for (const auto& v : names) {
    for (const std::string& name : v) EXPECT_EQ(got[name], 1) << name;
  }
}

TEST_P(BackendConformance, ConcurrentSavesOfOneNameExactlyOneWins) {
  Handle h = pack(random_hex_id(rng_));
  std::vector<std::thread> threads;
  std::vector<Code> codes(8);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back(
        [&, t] { codes[t] = backend_->save(h, Bytes(1000, static_cast<uint8_t>(t))).code(); });
  }
  for (auto& th : threads) th.join();
  int winners = 0;
  for (Code c : codes) {
    if (c == Code::kOk)
      ++winners;
    else
      EXPECT_EQ(c, Code::kAlreadyExists);
  }
  EXPECT_EQ(winners, 1);
  auto r = backend_->load(h);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1000u);
  EXPECT_EQ(*r, Bytes(1000, (*r)[0]));  // one writer's bytes, not a mix
}

TEST_P(BackendConformance, EmptyObjectRoundTrip) {
  Handle h = Handle{FileType::kIndex, random_hex_id(rng_)};
  ASSERT_TRUE(backend_->save(h, {}).ok());
  auto r = backend_->load(h);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->empty());
  auto s = backend_->stat(h);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size, 0u);
  EXPECT_EQ(backend_->load(h, 0, 1).status().code(), Code::kInvalidArgument);
}

TEST_P(BackendConformance, LargeObjectRoundTrip) {
  Handle h = pack(random_hex_id(rng_));
  Bytes data = random_bytes(rng_, 8 << 20);
  ASSERT_TRUE(backend_->save(h, data).ok());
  auto r = backend_->load(h);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r == data);
  auto tail = backend_->load(h, (8 << 20) - 4096, 0);
  ASSERT_TRUE(tail.ok());
  EXPECT_TRUE(std::equal(tail->begin(), tail->end(), data.end() - 4096));
  auto s = backend_->stat(h);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size, uint64_t{8} << 20);
}

TEST_P(BackendConformance, RejectsUnsafeNames) {
  for (const Handle& h :
       {Handle{FileType::kPack, ""}, Handle{FileType::kPack, "a"}, Handle{FileType::kPack, "zz00"},
        Handle{FileType::kKey, "../config"}, Handle{FileType::kKey, ".."},
        Handle{FileType::kIndex, ".tmp-1"}, Handle{FileType::kSnapshot, "a/b"},
        Handle{FileType::kLock, ""}, Handle{FileType::kConfig, "other"}}) {
    EXPECT_EQ(backend_->save(h, core::to_bytes("x")).code(), Code::kInvalidArgument)
        << h.to_string();
    EXPECT_EQ(backend_->load(h).status().code(), Code::kInvalidArgument) << h.to_string();
    EXPECT_EQ(backend_->stat(h).status().code(), Code::kInvalidArgument) << h.to_string();
    EXPECT_EQ(backend_->remove(h).code(), Code::kInvalidArgument) << h.to_string();
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, BackendConformance,
    ::testing::Values(BackendCase{"Local",
                                  [](const std::string& dir) -> std::shared_ptr<Backend> {
                                    return std::make_shared<LocalBackend>(dir);
                                  }},
                      BackendCase{"Memory",
                                  [](const std::string&) -> std::shared_ptr<Backend> {
                                    return std::make_shared<MemoryBackend>();
                                  }},
                      BackendCase{"FaultOverMemory",
                                  [](const std::string&) -> std::shared_ptr<Backend> {
                                    return std::make_shared<FaultBackend>(
                                        std::make_shared<MemoryBackend>());
                                  }},
                      BackendCase{"PrefetchOverMemory",
                                  [](const std::string&) -> std::shared_ptr<Backend> {
                                    return std::make_shared<PrefetchBackend>(
                                        std::make_shared<MemoryBackend>(),
                                        std::vector{FileType::kIndex, FileType::kSnapshot});
                                  }},
                      // A real s3rver; every test gets its own prefix in the bucket.
                      BackendCase{"S3",
                                  [](const std::string&) -> std::shared_ptr<Backend> {
                                    s3test::S3rver* server = s3test::shared_s3rver();
                                    if (server == nullptr) return nullptr;
                                    return std::make_shared<S3Backend>(
                                        server->options(s3test::unique_prefix()));
                                  }},
                      // rest: a real repository endpoint (server/repo_endpoint.h) over a
                      // local folder, spoken to with an admin token.
                      BackendCase{"Rest",
                                  [](const std::string& dir) -> std::shared_ptr<Backend> {
                                    struct Holder {
                                      std::unique_ptr<resttest::RestServer> server;
                                      std::unique_ptr<RestBackend> client;
                                    };
                                    auto local = std::make_shared<LocalBackend>(dir);
                                    if (!local->create().ok()) return nullptr;
                                    auto h = std::make_shared<Holder>();
                                    h->server = std::make_unique<resttest::RestServer>(
                                        std::map<std::string, std::shared_ptr<Backend>>{
                                            {"svc", local}});
                                    std::string token =
                                        h->server->add_token("admin", server::Role::kAdmin, {"*"});
                                    h->client = std::make_unique<RestBackend>(
                                        h->server->options("svc", token));
                                    return std::shared_ptr<Backend>(h, h->client.get());
                                  }},
                      // Every object above 64 KiB as a multipart upload (5 MiB parts).
                      BackendCase{"S3Multipart",
                                  [](const std::string&) -> std::shared_ptr<Backend> {
                                    s3test::S3rver* server = s3test::shared_s3rver();
                                    if (server == nullptr) return nullptr;
                                    S3Options o = server->options(s3test::unique_prefix());
                                    o.multipart_threshold = 64 << 10;
                                    o.part_size = 5 << 20;
                                    return std::make_shared<S3Backend>(o);
                                  }},
                      // The same over HTTPS, trusting the fixture's test CA.
                      BackendCase{"S3Https",
                                  [](const std::string&) -> std::shared_ptr<Backend> {
                                    s3test::S3rver* server = s3test::shared_https_s3rver();
                                    if (server == nullptr) return nullptr;
                                    return std::make_shared<S3Backend>(
                                        server->options(s3test::unique_prefix()));
                                  }}),
    [](const ::testing::TestParamInfo<BackendCase>& info) { return info.param.name; });

TEST(MemoryBackendTest, RefusesABodyThatDoesNotMatchItsSha256LikeS3) {
  MemoryBackend backend;
  Bytes data = core::to_bytes("pack");
  SaveOptions wrong;
  wrong.sha256_hex = core::hex_encode(crypto::sha256(core::to_bytes("other")));
  Handle h{FileType::kPack, wrong.sha256_hex};
  EXPECT_EQ(backend.save_with(h, data, wrong).code(), Code::kCorruption);
  EXPECT_EQ(backend.load(h).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace cairn::storage
