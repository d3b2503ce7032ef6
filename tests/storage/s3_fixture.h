// S3rver: a real s3rver (npm package, a local S3 look-alike) on 127.0.0.1 for
// the S3 backend's tests. Each instance owns a node process listening on a
// port it picked itself (read from its log), a temp data folder and one
// configured bucket; the destructor kills the process and removes the folder.
// It is started with tests/tools/s3rver_durable_put.js preloaded, so a PUT
// answers only once the object is on disk.
// s3rver is found at $CAIRN_S3RVER or <source dir>/tools/node_modules/.bin/s3rver
// (scripts/install-s3rver). When it is missing, start() returns nullptr and
// the tests GTEST_SKIP with s3rver_missing_message().
// With Tls::kOn the server speaks HTTPS with a certificate (SAN 127.0.0.1 and
// localhost) signed by a throwaway test CA that `openssl` makes in the temp
// folder; ca_file() names that CA for S3Options::ca_file / --cacert.
// Every server runs with --service-endpoint localhost, so virtual-host
// requests to "<bucket>.s3.localhost" reach the bucket (see vhost_options()).
// Not thread-safe: start and stop servers from the test's main thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "storage/s3_backend.h"

namespace cairn::storage::s3test {

class S3rver {
 public:
  static constexpr const char* kAccessKeyId = "S3RVER";
  static constexpr const char* kSecretAccessKey = "S3RVER";

  // Starts a server with `bucket` configured; nullptr (with a message on
  // stderr) when s3rver is not installed or does not come up.
  enum class Tls { kOff, kOn };
  static std::unique_ptr<S3rver> start(const std::string& bucket = "cairn-test",
                                       Tls tls = Tls::kOff);
  // The s3rver executable, or "" when it is not installed.
  static std::string find_binary();

  ~S3rver();
  S3rver(const S3rver&) = delete;
  S3rver& operator=(const S3rver&) = delete;

  int port() const { return port_; }
  std::string endpoint() const {
    return std::string(https_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  }
  // The test CA's certificate (PEM); "" for a plain HTTP server.
  const std::string& ca_file() const { return ca_file_; }
  const std::string& bucket() const { return bucket_; }
  const std::string& data_dir() const { return data_dir_; }
  // Options for a backend on this server's bucket under `prefix`, with the
  // s3rver credentials and a short retry budget (tests must not hang).
  // For an HTTPS server the options trust the test CA.
  S3Options options(const std::string& prefix) const;
  // options() with virtual-host addressing: endpoint "http://s3.localhost:PORT",
  // so requests go to "<bucket>.s3.localhost", pinned to 127.0.0.1 with
  // S3Options::resolve (no DNS involved).
  S3Options vhost_options(const std::string& prefix) const;

 private:
  S3rver() = default;
  void stop();

  pid_t pid_ = -1;
  int port_ = 0;
  std::string bucket_;
  std::string dir_;       // temp folder: data/ and s3rver.log
  std::string data_dir_;  // dir_/data
  bool https_ = false;
  std::string ca_file_;  // dir_/ca.pem when https_
};

// A second shared server speaking HTTPS with the test CA; nullptr when
// s3rver or openssl is unavailable.
S3rver* shared_https_s3rver();

// One server for the whole test process, started on first use and stopped at
// exit; nullptr when s3rver is unavailable.
S3rver* shared_s3rver();

// "s3rver not installed: ..." with how to install it.
std::string s3rver_missing_message();

// A fresh prefix ("t-<pid>-<n>-<random>") so tests sharing a bucket never meet.
std::string unique_prefix();

// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
int closed_port();

}  // namespace cairn::storage::s3test
