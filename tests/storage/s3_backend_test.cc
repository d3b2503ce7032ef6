// S3Backend beyond the shared contract (conformance_test.cc runs that one):
// location parsing, paging, credentials, missing buckets, retries, layout.
// Tests that need a server run a real s3rver (s3_fixture.h) and skip when it
// is not installed.
#include "storage/s3_backend.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "crypto/crypto.h"
#include "storage/backend.h"
#include "storage/s3_fixture.h"

namespace cairn::storage {
namespace {

using core::Code;
using s3test::S3rver;

// Sets an environment variable for one scope (tests run single-threaded here).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    if (value == nullptr) {
      ::unsetenv(name);
    } else {
      ::setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string hex_id(int i) {
  char buf[65];
  std::snprintf(buf, sizeof buf, "%08x%056d", static_cast<unsigned>(i * 2654435761u), i);
  return buf;
}

TEST(S3OptionsTest, ParsesLocations) {
  ScopedEnv id("AWS_ACCESS_KEY_ID", "AKID");
  ScopedEnv secret("AWS_SECRET_ACCESS_KEY", "very-secret");
  ScopedEnv token("AWS_SESSION_TOKEN", nullptr);
  ScopedEnv region("AWS_DEFAULT_REGION", "eu-west-3");
  ScopedEnv ca("CAIRN_S3_CACERT", "/etc/ca.pem");

  auto o = S3Options::from_location("s3:http://127.0.0.1:9000/bucket/some/prefix/");
  ASSERT_TRUE(o.ok()) << o.status().to_string();
  EXPECT_EQ(o->endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(o->bucket, "bucket");
  EXPECT_EQ(o->prefix, "some/prefix");
  EXPECT_EQ(o->access_key_id, "AKID");
  EXPECT_EQ(o->secret_access_key, "very-secret");
  EXPECT_EQ(o->region, "eu-west-3");
  EXPECT_EQ(o->ca_file, "/etc/ca.pem");

  auto plain = S3Options::from_location("s3:https://s3.example.com/b");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->endpoint, "https://s3.example.com");
  EXPECT_EQ(plain->prefix, "");

  auto backend = open_backend("s3:https://s3.example.com/b/p");
  ASSERT_TRUE(backend.ok()) << backend.status().to_string();
  EXPECT_EQ((*backend)->location(), "s3:https://s3.example.com/b/p");

  for (const char* bad :
       {"s3:", "s3:s3.example.com/bucket", "s3:ftp://h/b", "s3:http://h", "s3:http://h/",
        "s3:http:///b", "s3:http://user:pw@h/b", "s3:http://h/b?x=1", "s3:http://h/b/../x",
        "s3:http://h/b//x", "s3:http://h/b/a b", "s3:http://h/bu%cket"}) {
    auto r = S3Options::from_location(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    // Secrets never show in messages, even for a malformed location.
    EXPECT_EQ(r.status().message().find("very-secret"), std::string::npos);
  }
}

TEST(S3OptionsTest, MissingCredentialsAreRefused) {
  ScopedEnv id("AWS_ACCESS_KEY_ID", nullptr);
  ScopedEnv secret("AWS_SECRET_ACCESS_KEY", nullptr);
  ScopedEnv file("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/cairn-test/credentials");
  auto r = open_backend("s3:http://127.0.0.1:9/bucket");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
  EXPECT_NE(r.status().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
}

TEST(S3OptionsTest, AddressingDefaultsToVirtualHostOnAwsOnly) {
  S3Options o;
  o.bucket = "my-bucket";
  o.endpoint = "https://s3.eu-west-3.amazonaws.com";
  EXPECT_TRUE(o.virtual_host());
  o.endpoint = "https://s3.amazonaws.com:443";
  EXPECT_TRUE(o.virtual_host());
  o.endpoint = "https://minio.internal:9000";
  EXPECT_FALSE(o.virtual_host());
  o.endpoint = "https://notamazonaws.com";
  EXPECT_FALSE(o.virtual_host());
  // Names that cannot be a host label, or dots under https (the wildcard
  // certificate covers one label), stay on path style.
  o.endpoint = "https://s3.amazonaws.com";
  o.bucket = "Under_Score";
  EXPECT_FALSE(o.virtual_host());
  o.bucket = "dotted.bucket";
  EXPECT_FALSE(o.virtual_host());
  // Forced either way.
  o.bucket = "my-bucket";
  o.addressing = S3Addressing::kPath;
  EXPECT_FALSE(o.virtual_host());
  o.endpoint = "http://127.0.0.1:9000";
  o.addressing = S3Addressing::kVirtualHost;
  EXPECT_TRUE(o.virtual_host());
  EXPECT_TRUE(o.validate().ok());
  o.bucket = "Under_Score";
  EXPECT_EQ(o.validate().code(), Code::kInvalidArgument);
  o.bucket = "my-bucket";
  o.connections = 0;
  EXPECT_EQ(o.validate().code(), Code::kInvalidArgument);
  o.connections = 8;
  o.region = "eu-west-3<x>";
  EXPECT_EQ(o.validate().code(), Code::kInvalidArgument);
}

TEST(S3OptionsTest, OpenOptionsReachTheBackend) {
  ScopedEnv id("AWS_ACCESS_KEY_ID", "AKID");
  ScopedEnv secret("AWS_SECRET_ACCESS_KEY", "very-secret");
  ScopedEnv ca("CAIRN_S3_CACERT", "/etc/env-ca.pem");
  OpenOptions open;
  open.s3_connections = 3;
  open.s3_multipart_threshold = 100 << 20;
  open.s3_part_size = 10 << 20;
  auto b = open_backend("s3:https://s3.example.com/b", open);
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_EQ((*b)->preferred_upload_concurrency(), 3);
  auto* s3 = static_cast<S3Backend*>(b->get());  // test only: we know what we opened
  EXPECT_EQ(s3->options().ca_file, "/etc/env-ca.pem");
  EXPECT_EQ(s3->options().multipart_threshold, uint64_t{100} << 20);
  EXPECT_EQ(s3->options().part_size, uint64_t{10} << 20);
  open.s3_part_size = 1 << 20;  // below S3's 5 MiB minimum
  EXPECT_EQ(open_backend("s3:https://s3.example.com/b", open).status().code(),
            Code::kInvalidArgument);
  open.s3_part_size = 0;
  open.ca_file = "/etc/flag-ca.pem";  // --cacert wins over the environment
  open.s3_addressing = S3Addressing::kVirtualHost;
  b = open_backend("s3:https://s3.example.com/b_x", open);
  EXPECT_EQ(b.status().code(), Code::kInvalidArgument);
  b = open_backend("s3:https://s3.example.com/bucket", open);
  ASSERT_TRUE(b.ok());
  s3 = static_cast<S3Backend*>(b->get());
  EXPECT_EQ(s3->options().ca_file, "/etc/flag-ca.pem");
  EXPECT_TRUE(s3->options().virtual_host());
}

TEST(S3OptionsTest, RetryBudgetFromEnvironment) {
  ScopedEnv id("AWS_ACCESS_KEY_ID", "AKID");
  ScopedEnv secret("AWS_SECRET_ACCESS_KEY", "very-secret");
  {
    ScopedEnv attempts("CAIRN_S3_MAX_ATTEMPTS", nullptr);
    ScopedEnv stall("CAIRN_S3_TIMEOUT_SECONDS", "");
    ScopedEnv total("CAIRN_S3_MAX_RETRY_SECONDS", nullptr);
    auto o = S3Options::from_location("s3:http://127.0.0.1:9000/bucket");
    ASSERT_TRUE(o.ok()) << o.status().to_string();
    const S3Options defaults;
    EXPECT_EQ(o->max_attempts, defaults.max_attempts);
    EXPECT_EQ(o->stall_timeout, defaults.stall_timeout);
    EXPECT_EQ(o->max_total_backoff, defaults.max_total_backoff);
  }
  {
    ScopedEnv attempts("CAIRN_S3_MAX_ATTEMPTS", "3");
    ScopedEnv stall("CAIRN_S3_TIMEOUT_SECONDS", "2");
    ScopedEnv total("CAIRN_S3_MAX_RETRY_SECONDS", "0");
    auto o = S3Options::from_location("s3:http://127.0.0.1:9000/bucket");
    ASSERT_TRUE(o.ok()) << o.status().to_string();
    EXPECT_EQ(o->max_attempts, 3);
    EXPECT_EQ(o->stall_timeout, std::chrono::seconds(2));
    EXPECT_EQ(o->max_total_backoff, std::chrono::seconds(0));
  }
  for (auto [name, value] : std::initializer_list<std::pair<const char*, const char*>>{
           {"CAIRN_S3_MAX_ATTEMPTS", "0"},
           {"CAIRN_S3_MAX_ATTEMPTS", "lots"},
           {"CAIRN_S3_MAX_ATTEMPTS", "3x"},
           {"CAIRN_S3_TIMEOUT_SECONDS", "0"},
           {"CAIRN_S3_TIMEOUT_SECONDS", "-5"},
           {"CAIRN_S3_MAX_RETRY_SECONDS", "1.5"},
           {"CAIRN_S3_MAX_RETRY_SECONDS", "99999999999999999999"}}) {
    ScopedEnv bad(name, value);
    auto r = S3Options::from_location("s3:http://127.0.0.1:9000/bucket");
    ASSERT_FALSE(r.ok()) << name << "=" << value;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(std::string(name) + "='" + value + "'"),
              std::string::npos)
        << r.status().to_string();
  }
}

TEST(S3BackendTest, UnreachableServerIsTransientAfterBoundedRetries) {
  S3Options o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(s3test::closed_port());
  o.bucket = "bucket";
  o.access_key_id = "id";
  o.secret_access_key = "secret";
  o.max_attempts = 3;
  o.initial_backoff = std::chrono::milliseconds(20);
  o.max_total_backoff = std::chrono::milliseconds(500);
  S3Backend backend(o);
  auto start = std::chrono::steady_clock::now();
  auto r = backend.stat(Handle{FileType::kIndex, hex_id(1)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kTransient) << r.status().to_string();
  EXPECT_NE(r.status().message().find("gave up after 3 attempts"), std::string::npos)
      << r.status().to_string();
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_EQ(backend.save(Handle{FileType::kIndex, hex_id(1)}, core::to_bytes("x")).code(),
            Code::kTransient);
  EXPECT_EQ(backend.exists().status().code(), Code::kTransient);
}

TEST(S3BackendTest, TotalBackoffBudgetBoundsRetries) {
  S3Options o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(s3test::closed_port());
  o.bucket = "bucket";
  o.access_key_id = "id";
  o.secret_access_key = "secret";
  o.max_attempts = 1000;
  o.initial_backoff = std::chrono::milliseconds(50);
  o.max_total_backoff = std::chrono::milliseconds(300);
  S3Backend backend(o);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(backend.remove(Handle{FileType::kLock, hex_id(2)}).code(), Code::kTransient);
  EXPECT_LT(seconds_since(start), 5.0);
}

// What a PUT carries, seen by a bare HTTP server on loopback (s3rver checks
// neither the payload hash nor an additional checksum, so it cannot tell).
class S3WireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // HEAD (does the object exist?) reaches the GET handler in cpp-httplib.
    server_.Get(".*", [](const httplib::Request&, httplib::Response& res) { res.status = 404; });
    server_.Put(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu_);
      put_headers_ = req.headers;
      res.status = 200;
    });
    server_.set_keep_alive_max_count(1);  // so stop() does not wait on an idle connection
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    S3Options o;
    o.endpoint = "http://127.0.0.1:" + std::to_string(port_);
    o.bucket = "bucket";
    o.access_key_id = "id";
    o.secret_access_key = "secret";
    backend_ = std::make_unique<S3Backend>(o);
  }
  void TearDown() override {
    server_.stop();
    thread_.join();
  }
  std::string header(const std::string& name) {
    std::lock_guard lock(mu_);
    auto it = put_headers_.find(name);
    return it == put_headers_.end() ? "" : it->second;
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  httplib::Headers put_headers_;
  std::unique_ptr<S3Backend> backend_;
};

TEST_F(S3WireTest, AKnownHashIsSignedAndSentAsChecksumWithoutMd5) {
  core::Bytes body = core::to_bytes("pack bytes");
  std::string hex = core::hex_encode(crypto::sha256(body));
  SaveOptions opt;
  opt.sha256_hex = hex;
  ASSERT_TRUE(backend_->save_with(Handle{FileType::kPack, hex}, body, opt).ok());
  EXPECT_EQ(header("x-amz-content-sha256"), hex);
  EXPECT_EQ(header("x-amz-checksum-sha256"), core::base64_encode(crypto::sha256(body)));
  EXPECT_EQ(header("Content-MD5"), "");
  EXPECT_NE(header("Authorization").find("x-amz-checksum-sha256"), std::string::npos);  // signed
}

TEST_F(S3WireTest, WithoutAHashTheBodyIsHashedAndGetsContentMd5) {
  core::Bytes body = core::to_bytes("lock");
  ASSERT_TRUE(backend_->save(Handle{FileType::kLock, hex_id(7)}, body).ok());
  EXPECT_EQ(header("x-amz-content-sha256"), core::hex_encode(crypto::sha256(body)));
  EXPECT_EQ(header("Content-MD5"), "3OfEF0zpMjkEqTSkhsQSiA==");  // base64(md5("lock"))
  EXPECT_EQ(header("x-amz-checksum-sha256"), "");
}

class S3ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = s3test::shared_s3rver();
    if (server_ == nullptr) GTEST_SKIP() << s3test::s3rver_missing_message();
  }
  S3rver* server_ = nullptr;
};

TEST_F(S3ServerTest, ListsMoreThanOnePage) {
  S3Backend backend(server_->options(s3test::unique_prefix()));
  ASSERT_TRUE(backend.create().ok());
  constexpr int kObjects = 1201;  // S3 pages hold at most 1000 keys
  std::map<std::string, uint64_t> want;
  for (int i = 0; i < kObjects; ++i) want[hex_id(i)] = static_cast<uint64_t>(i % 7);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int i = 0;
      for (const auto& [name, size] : want) {
        if (i++ % 4 != t) continue;
        if (!backend.save(Handle{FileType::kIndex, name}, core::Bytes(size, 'x')).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);

  for (int page_size : {1000, 97}) {
    S3Options o = backend.options();
    o.list_page_size = page_size;
    S3Backend lister(o);
    std::map<std::string, uint64_t> got;
    core::Status st = lister.list(FileType::kIndex, [&](const FileInfo& fi) {
      EXPECT_TRUE(got.emplace(fi.name, fi.size).second) << fi.name;
    });
    ASSERT_TRUE(st.ok()) << "page size " << page_size << ": " << st.to_string();
    EXPECT_EQ(got.size(), want.size()) << "page size " << page_size;
    EXPECT_TRUE(got == want) << "page size " << page_size;
  }
}

TEST_F(S3ServerTest, WrongAccessKeyIdIsPermissionDeniedWithoutRetrying) {
  S3Options o = server_->options(s3test::unique_prefix());
  o.access_key_id = "NOT-A-KNOWN-KEY";
  o.secret_access_key = "TOPSECRET-VALUE";
  o.max_attempts = 6;
  o.initial_backoff = std::chrono::milliseconds(1000);  // a retry would show in the time
  S3Backend backend(o);
  auto start = std::chrono::steady_clock::now();
  auto e = backend.exists();
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Code::kPermissionDenied) << e.status().to_string();
  core::Status saved = backend.save(Handle{FileType::kKey, hex_id(3)}, core::to_bytes("k"));
  EXPECT_EQ(saved.code(), Code::kPermissionDenied) << saved.to_string();
  auto listed = backend.list(FileType::kSnapshot, [](const FileInfo&) {});
  EXPECT_EQ(listed.code(), Code::kPermissionDenied) << listed.to_string();
  EXPECT_NE(listed.message().find("InvalidAccessKeyId"), std::string::npos) << listed.to_string();
  EXPECT_LT(seconds_since(start), 0.9);
  for (const core::Status& st : {e.status(), saved, listed}) {
    EXPECT_EQ(st.message().find("TOPSECRET"), std::string::npos) << st.to_string();
  }
}

TEST_F(S3ServerTest, MissingBucketIsNotFoundNamingTheBucket) {
  S3Options o = server_->options("repo");
  o.bucket = "no-such-bucket-for-cairn";
  S3Backend backend(o);
  const std::string want = "bucket no-such-bucket-for-cairn does not exist";
  auto e = backend.exists();
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), Code::kNotFound);
  EXPECT_NE(e.status().message().find(want), std::string::npos) << e.status().to_string();
  core::Status created = backend.create();
  EXPECT_EQ(created.code(), Code::kNotFound);
  EXPECT_NE(created.message().find(want), std::string::npos) << created.to_string();
  Handle h{FileType::kSnapshot, hex_id(4)};
  core::Status saved = backend.save(h, core::to_bytes("s"));
  EXPECT_EQ(saved.code(), Code::kNotFound);
  EXPECT_NE(saved.message().find(want), std::string::npos) << saved.to_string();
  auto loaded = backend.load(h);
  EXPECT_EQ(loaded.status().code(), Code::kNotFound);
  EXPECT_NE(loaded.status().message().find(want), std::string::npos) << loaded.status().to_string();
  core::Status removed = backend.remove(h);
  EXPECT_EQ(removed.code(), Code::kNotFound) << removed.to_string();
  core::Status listed = backend.list(FileType::kSnapshot, [](const FileInfo&) {});
  EXPECT_EQ(listed.code(), Code::kNotFound);
  EXPECT_NE(listed.message().find(want), std::string::npos) << listed.to_string();
}

TEST_F(S3ServerTest, KeysFollowTheLocalLayoutUnderThePrefix) {
  const std::string prefix = s3test::unique_prefix() + "/nested";
  S3Backend backend(server_->options(prefix));
  ASSERT_TRUE(backend.create().ok());
  const std::string pack = "ab" + hex_id(5).substr(2);
  ASSERT_TRUE(backend.save(Handle{FileType::kPack, pack}, core::to_bytes("pack")).ok());
  ASSERT_TRUE(backend.save(Handle{FileType::kKey, hex_id(6)}, core::to_bytes("key")).ok());
  ASSERT_TRUE(backend.save(Handle{FileType::kConfig, "config"}, core::to_bytes("{}")).ok());
  // s3rver keeps each object as "<data>/<bucket>/<key>._S3rver_object".
  namespace fs = std::filesystem;
  const fs::path root = fs::path(server_->data_dir()) / server_->bucket() / prefix;
  EXPECT_TRUE(fs::exists(root / "data/ab" / (pack + "._S3rver_object")));
  EXPECT_TRUE(fs::exists(root / "keys" / (hex_id(6) + "._S3rver_object")));
  EXPECT_TRUE(fs::exists(root / "config._S3rver_object"));

  // Another prefix in the same bucket is another repository.
  S3Backend other(server_->options(s3test::unique_prefix()));
  auto e = other.exists();
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(*e);
  int packs = 0;
  ASSERT_TRUE(other.list(FileType::kPack, [&](const FileInfo&) { ++packs; }).ok());
  EXPECT_EQ(packs, 0);
  EXPECT_EQ(backend.create().code(), Code::kAlreadyExists);
}

TEST_F(S3ServerTest, LargeObjectsGoUpInPartsAndReadBackWhole) {
  S3Options o = server_->options(s3test::unique_prefix());
  o.multipart_threshold = 5 << 20;
  o.part_size = 5 << 20;
  S3Backend backend(o);
  ASSERT_TRUE(backend.create().ok());
  // Three parts: 5 MiB, 5 MiB and a short last one.
  core::Bytes data((12 << 20) + 7);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  const Handle h{FileType::kPack, hex_id(11)};
  ASSERT_TRUE(backend.save(h, data).ok());
  auto whole = backend.load(h);
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  EXPECT_TRUE(*whole == data);
  // A range across the boundary between parts 1 and 2.
  auto across = backend.load(h, (5 << 20) - 100, 200);
  ASSERT_TRUE(across.ok());
  EXPECT_TRUE(std::equal(across->begin(), across->end(), data.begin() + (5 << 20) - 100));
  auto info = backend.stat(h);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, data.size());
  // Immutable like every other object, and no upload is left open.
  EXPECT_EQ(backend.save(h, data).code(), Code::kAlreadyExists);
  namespace fs = std::filesystem;
  const fs::path uploads = fs::path(server_->data_dir()) / server_->bucket() / "uploads";
  EXPECT_TRUE(!fs::exists(uploads) || fs::is_empty(uploads));
  // At the threshold itself: one plain PUT.
  const Handle small{FileType::kPack, hex_id(12)};
  ASSERT_TRUE(backend.save(small, core::Bytes(5 << 20, 'p')).ok());
  EXPECT_EQ(backend.load(small)->size(), size_t{5} << 20);
}

TEST_F(S3ServerTest, OpenBackendTalksToTheServer) {
  ScopedEnv id("AWS_ACCESS_KEY_ID", S3rver::kAccessKeyId);
  ScopedEnv secret("AWS_SECRET_ACCESS_KEY", S3rver::kSecretAccessKey);
  const std::string location =
      "s3:" + server_->endpoint() + "/" + server_->bucket() + "/" + s3test::unique_prefix();
  auto backend = open_backend(location);
  ASSERT_TRUE(backend.ok()) << backend.status().to_string();
  EXPECT_EQ((*backend)->location(), location);
  ASSERT_TRUE((*backend)->create().ok());
  Handle h{FileType::kSnapshot, hex_id(7)};
  ASSERT_TRUE((*backend)->save(h, core::to_bytes("snapshot")).ok());
  auto r = (*backend)->load(h, 4, 0);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, core::to_bytes("shot"));
}

TEST_F(S3ServerTest, VirtualHostAddressing) {
  const std::string prefix = s3test::unique_prefix();
  S3Options o = server_->vhost_options(prefix);
  ASSERT_TRUE(o.virtual_host());
  S3Backend backend(o);
  ASSERT_TRUE(backend.create().ok());
  Handle h{FileType::kSnapshot, hex_id(8)};
  ASSERT_TRUE(backend.save(h, core::to_bytes("virtual")).ok());
  auto r = backend.load(h, 1, 3);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, core::to_bytes("irt"));
  int n = 0;
  ASSERT_TRUE(backend.list(FileType::kSnapshot, [&](const FileInfo&) { ++n; }).ok());
  EXPECT_EQ(n, 1);
  // The bucket came from the host name: the object is in the bucket's folder.
  namespace fs = std::filesystem;
  EXPECT_TRUE(fs::exists(fs::path(server_->data_dir()) / server_->bucket() / prefix / "snapshots" /
                         (hex_id(8) + "._S3rver_object")));
  // And a path-style backend on the same bucket sees it.
  S3Backend path_style(server_->options(prefix));
  EXPECT_TRUE(path_style.stat(h).ok());
  EXPECT_TRUE(backend.remove(h).ok());
  EXPECT_EQ(path_style.stat(h).status().code(), Code::kNotFound);
}

TEST_F(S3ServerTest, SessionTokenIsAccepted) {
  S3Options o = server_->options(s3test::unique_prefix());
  o.session_token = "session-token-for-test";
  S3Backend backend(o);
  ASSERT_TRUE(backend.create().ok());
  EXPECT_TRUE(backend.save(Handle{FileType::kLock, hex_id(9)}, core::to_bytes("l")).ok());
}

TEST_F(S3ServerTest, CreateContainerMakesAMissingBucket) {
  static int counter = 0;
  for (const char* region : {"us-east-1", "eu-west-3"}) {
    S3Options o = server_->options("repo");
    o.bucket = "made-by-cairn-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    o.region = region;
    S3Backend backend(o);
    core::Status before = backend.create();
    EXPECT_EQ(before.code(), Code::kNotFound) << before.to_string();
    EXPECT_NE(before.message().find("--create-bucket"), std::string::npos) << before.to_string();
    core::Status made = backend.create_container();
    ASSERT_TRUE(made.ok()) << region << ": " << made.to_string();
    EXPECT_TRUE(
        std::filesystem::is_directory(std::filesystem::path(server_->data_dir()) / o.bucket));
    EXPECT_TRUE(backend.create().ok());
    EXPECT_TRUE(backend.create_container().ok()) << "an existing bucket is fine";
    auto e = backend.exists();
    ASSERT_TRUE(e.ok());
    EXPECT_FALSE(*e);
  }
}

class S3HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = s3test::shared_https_s3rver();
    if (server_ == nullptr) {
      GTEST_SKIP() << s3test::s3rver_missing_message() << " (or no openssl CLI for the test CA)";
    }
  }
  S3rver* server_ = nullptr;
};

TEST_F(S3HttpsTest, TrustedThroughTheTestCa) {
  S3Backend backend(server_->options(s3test::unique_prefix()));
  ASSERT_TRUE(backend.options().endpoint.starts_with("https://"));
  ASSERT_TRUE(backend.create().ok());
  Handle h{FileType::kIndex, hex_id(10)};
  ASSERT_TRUE(backend.save(h, core::to_bytes("over tls")).ok());
  auto r = backend.load(h);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, core::to_bytes("over tls"));
}

TEST_F(S3HttpsTest, UntrustedCertificateIsRefusedAtOnceNamingCacert) {
  S3Options o = server_->options(s3test::unique_prefix());
  o.ca_file = "";  // the system store does not know the test CA
  o.max_attempts = 6;
  o.initial_backoff = std::chrono::milliseconds(1000);  // a retry would show in the time
  S3Backend backend(o);
  auto start = std::chrono::steady_clock::now();
  auto e = backend.exists();
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().code(), Code::kTransient) << e.status().to_string();
  EXPECT_NE(e.status().message().find("certificate"), std::string::npos) << e.status().to_string();
  EXPECT_NE(e.status().message().find("--cacert"), std::string::npos) << e.status().to_string();
  EXPECT_LT(seconds_since(start), 0.9);
}

TEST_F(S3HttpsTest, InsecureTlsSkipsVerification) {
  S3Options o = server_->options(s3test::unique_prefix());
  o.ca_file = "";
  o.insecure_tls = true;
  S3Backend backend(o);
  ASSERT_TRUE(backend.create().ok());
  EXPECT_TRUE(backend.save(Handle{FileType::kKey, hex_id(11)}, core::to_bytes("k")).ok());
}

TEST_F(S3HttpsTest, HostNameIsChecked) {
  // The certificate is for 127.0.0.1 and localhost; "s3.localhost" pinned to
  // 127.0.0.1 has the right CA but the wrong name.
  S3Options o = server_->options(s3test::unique_prefix());
  o.endpoint = "https://s3.localhost:" + std::to_string(server_->port());
  o.addressing = S3Addressing::kPath;
  o.resolve = {"s3.localhost:" + std::to_string(server_->port()) + ":127.0.0.1"};
  S3Backend backend(o);
  auto e = backend.exists();
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().code(), Code::kTransient) << e.status().to_string();
}

}  // namespace
}  // namespace cairn::storage
