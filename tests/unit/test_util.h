// Helpers shared by unit tests: temp folders and fast repositories.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include "crypto/crypto.h"
#include "repo/repository.h"
#include "storage/memory_backend.h"

namespace cairn::testing {

// A fresh folder under /tmp, removed (with its contents) on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/cairn-test.XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline crypto::KdfParams fast_kdf() { return {1, 8u << 20}; }

inline std::unique_ptr<repo::Repository> make_repo(std::shared_ptr<storage::Backend> backend,
                                                   const std::string& password = "pw") {
  (void)crypto::init();
  repo::InitOptions opt;
  opt.kdf = fast_kdf();
  auto r = repo::Repository::init(std::move(backend), password, opt);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(r).value();
}

inline core::Bytes random_data(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  core::Bytes b(n);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t k = 0; k < 8 && i + k < n; ++k) b[i + k] = static_cast<uint8_t>(v >> (8 * k));
  }
  return b;
}

inline void write_file(const std::string& path, core::ByteView data) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Fixture: an in-memory repository and a temp folder for input files.
class MemoryRepoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = std::make_shared<storage::MemoryBackend>();
    repo_ = make_repo(backend_);
  }
  // Writes `data` to dir_/name; returns the path.
  std::string write(const std::string& name, core::ByteView data) {
    std::string p = dir_ / name;
    write_file(p, data);
    return p;
  }
  TempDir dir_;
  std::shared_ptr<storage::MemoryBackend> backend_;
  std::unique_ptr<repo::Repository> repo_;
};

}  // namespace cairn::testing
