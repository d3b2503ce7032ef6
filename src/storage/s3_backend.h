// S3Backend: a repository in an S3 (or S3-compatible) bucket, spoken to with
// libcurl over HTTP(S), path style ("http://host:port/bucket/key") or
// virtual-host style ("https://bucket.host/key"), signed with AWS Signature
// V4 by storage/sigv4.h.
//
// Location: "s3:http://host:port/bucket[/prefix]" or "s3:https://...". Object
// keys are the local layout under the optional prefix: "PREFIX/config",
// "PREFIX/keys/<id>", "PREFIX/data/ab/<id>", ... (docs/storage.md).
//
// How the Backend contract maps onto S3:
// - save(): HEAD, then PUT with Content-MD5 and "If-None-Match: *". S3 PUTs
//   are atomic (whole object or nothing); so is a multipart upload, which
//   only becomes visible when it is completed (objects above
//   S3Options::multipart_threshold). Saves of one name inside this
//   process are serialized, so exactly one wins; across processes the
//   HEAD-then-PUT pair is a race unless the server honours If-None-Match
//   (AWS does since 2024; s3rver ignores it). Content-addressed objects make
//   the race harmless for packs, index and snapshots: both writers store the
//   same bytes.
// - load(): GET with a Range header; stat(): HEAD; list(): ListObjectsV2
//   with continuation tokens; remove(): DELETE (a missing object is success).
// - Retries with exponential backoff and jitter on 5xx, 429/SlowDown and
//   transport errors, bounded by S3Options; kTransient once exhausted.
//   401/403 -> kPermissionDenied and 404 -> kNotFound, never retried.
//
// Thread-safe: every call uses its own CURL easy handle; connections, DNS
// answers and TLS sessions are shared between calls through one CURLSH.
// Secrets are never logged nor put into error messages.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "storage/aws_credentials.h"
#include "storage/backend.h"

namespace cairn::storage {

struct S3Options {
  std::string endpoint;  // "http://127.0.0.1:9000" (scheme, host and port; no path)
  std::string bucket;
  std::string prefix;  // "" or "a/b": no leading or trailing '/'
  std::string region = "us-east-1";
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // sent as x-amz-security-token when set
  std::string ca_file;        // CA bundle for https (--cacert, CAIRN_S3_CACERT); "" = system
  // Turns off certificate and host name verification (--insecure-tls).
  bool insecure_tls = false;
  S3Addressing addressing = S3Addressing::kAuto;
  // Uploads the repository keeps in flight (--s3-connections).
  int connections = 8;
  // Objects larger than this go up as a multipart upload of part_size parts
  // (--s3-multipart-threshold, --s3-part-size), each part verified
  // (Content-MD5) and retried on its own. Packs (~16 MiB) stay below the
  // default and go in one atomic PUT: one request, nothing to clean up.
  uint64_t multipart_threshold = 32ull << 20;
  // At least 5 MiB (S3's minimum for every part but the last); grown for
  // objects that would need more than 10,000 parts.
  uint64_t part_size = 8ull << 20;
  // "host:port:address" entries that bypass DNS, like curl --resolve (tests
  // use it to reach a virtual-host name on 127.0.0.1).
  std::vector<std::string> resolve;

  // Retries: at most max_attempts tries per request; the wait before retry n
  // is a random time in [0, min(initial_backoff * 2^n, max_backoff)] and all
  // waits of one request add up to at most max_total_backoff.
  int max_attempts = 6;
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{8000};
  std::chrono::milliseconds max_total_backoff{30000};
  std::chrono::milliseconds connect_timeout{10000};
  // A transfer slower than 1 KiB/s for this long is abandoned (and retried).
  std::chrono::seconds stall_timeout{60};
  // Keys per ListObjectsV2 page (S3 caps it at 1000).
  int list_page_size = 1000;

  // Parses "s3:http(s)://host[:port]/bucket[/prefix]" and fills the
  // credentials (storage/aws_credentials.h: environment, then the shared
  // credentials file), region (AWS_DEFAULT_REGION, AWS_REGION) and CA file
  // (CAIRN_S3_CACERT) from `env`.
  static core::Result<S3Options> from_location(const std::string& location,
                                               const EnvLookup& env = process_env);
  // kInvalidArgument when the settings do not fit together (a bucket name
  // that cannot be a host name with virtual-host addressing, ...).
  core::Status validate() const;
  // Whether requests go to https://bucket.host/ rather than https://host/bucket/.
  bool virtual_host() const;
};

class S3Backend : public Backend {
 public:
  explicit S3Backend(S3Options options);
  ~S3Backend() override;
  S3Backend(const S3Backend&) = delete;
  S3Backend& operator=(const S3Backend&) = delete;

  core::Status save(const Handle& h, core::ByteView data) override;
  // Uses options.sha256_hex (no_sync is moot: a stored object is durable).
  core::Status save_with(const Handle& h, core::ByteView data, const SaveOptions& options) override;
  core::Result<core::Bytes> load(const Handle& h, uint64_t offset = 0,
                                 uint64_t length = 0) override;
  // One ranged GET whose body goes to the sink as it arrives; a transfer that
  // breaks is retried from the first byte not yet delivered.
  core::Status load_stream(const Handle& h, uint64_t offset, uint64_t length,
                           const ByteSink& sink) override;
  core::Result<FileInfo> stat(const Handle& h) override;
  core::Status list(FileType t, const std::function<void(const FileInfo&)>& fn) override;
  core::Status remove(const Handle& h) override;
  // Whether PREFIX/config exists; a missing bucket is kNotFound.
  core::Result<bool> exists() override;
  // Checks that the bucket exists and holds no repository under the prefix.
  core::Status create() override;
  // PUT of the bucket (with a LocationConstraint outside us-east-1) unless it
  // exists already.
  core::Status create_container() override;
  std::string location() const override;
  int preferred_upload_concurrency() const override { return options_.connections; }
  bool prefers_whole_reads() const override { return true; }

  const S3Options& options() const { return options_; }

  struct Request;
  struct Response;
  struct StreamTarget;

 private:
  std::string key_of(const Handle& h) const;
  // One request with retries. Returns the final HTTP answer (any status the
  // caller must interpret) or a transport / exhausted-retries error.
  core::Result<Response> call(const Request& req);
  // With `stream`, a success's body goes to stream's sink, not to Response::body.
  core::Result<Response> perform_once(const Request& req, StreamTarget* stream = nullptr);
  // Sleeps before retry `attempt` + 1 (jittered backoff within the total
  // budget); false when no retry is left.
  bool wait_to_retry(int attempt, std::chrono::milliseconds& waited);
  // Maps a non-success answer to a Status (403 -> kPermissionDenied, ...).
  core::Status error_of(const Request& req, const Response& resp) const;
  // HEAD of the bucket: ok, kNotFound "bucket X does not exist", or an error.
  core::Status check_bucket();
  core::Result<bool> object_exists(const std::string& key);
  // save() of an object above multipart_threshold: CreateMultipartUpload,
  // UploadPart for each part, CompleteMultipartUpload; aborted on failure.
  core::Status save_multipart(const std::string& key, core::ByteView data);
  core::Status upload_parts(const std::string& key, const std::string& upload_id,
                            core::ByteView data);

  const S3Options options_;
  struct Shared;  // curl share handle and its locks
  std::unique_ptr<Shared> shared_;

  // Object keys with a save() in flight in this process.
  std::mutex saving_mu_;
  std::condition_variable saving_cv_;
  std::set<std::string> saving_;
};

}  // namespace cairn::storage
