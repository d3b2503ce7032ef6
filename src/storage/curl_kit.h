// The libcurl pieces every HTTP backend (S3, REST) needs: RAII for handles
// and header lists, one-time global init, the transient-error rule, body and
// upload callbacks, and "equal jitter" backoff. One copy, so both backends
// retry the same failures the same way.
//
// Thread-compatible values and pure functions; callbacks never let an
// exception cross into C.
#pragma once

#include <curl/curl.h>

#include <array>
#include <chrono>
#include <mutex>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/bytes.h"

namespace cairn::storage::curl_kit {

struct EasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;

class HeaderList {
 public:
  HeaderList() = default;
  HeaderList(const HeaderList&) = delete;
  HeaderList& operator=(const HeaderList&) = delete;
  ~HeaderList() { curl_slist_free_all(list_); }
  bool append(const std::string& line);
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

// A curl share handle with its own locks: DNS cache, TLS sessions and
// connections reused by every easy handle of one backend, across threads.
// `share` is null when libcurl could not make one (requests then work unshared).
class Share {
 public:
  Share();
  ~Share();
  Share(const Share&) = delete;
  Share& operator=(const Share&) = delete;
  CURLSH* share = nullptr;

 private:
  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* user);
  static void unlock(CURL*, curl_lock_data data, void* user);
  std::array<std::mutex, CURL_LOCK_DATA_LAST> locks_;
};

// Idle connections a Share keeps for reuse (more than any caller keeps in
// flight: --s3-connections is at most 64).
constexpr long kMaxSharedConnections = 80;

// How one request reaches its server: the options both backends set alike.
struct Transport {
  const char* url;
  char* error_buffer;  // CURL_ERROR_SIZE bytes
  CURLSH* share;       // may be null
  curl_slist* headers;
  std::chrono::milliseconds connect_timeout;
  std::chrono::seconds stall_timeout;  // below 1 KiB/s for this long: a timeout
  bool insecure_tls;
  const std::string& ca_file;  // "" = the system store
};
// Sets URL, http(s) only, no signals, no redirects, timeouts and TLS
// verification (peer and host name unless insecure_tls) on `e`.
void set_transport(CURL* e, const Transport& t);

// curl_global_init once per process, before the first handle.
void global_init();

// Connection-level failures worth another attempt (refused, reset, timed
// out, cut short, TLS handshake): the request may not have arrived at all.
bool is_transient(CURLcode rc);

// Decimal digits only, the whole string.
bool parse_u64(std::string_view s, uint64_t* out);

// Where an answer's body goes (CURLOPT_WRITEDATA of on_body). The first
// write reserves the announced Content-Length (up to 256 MiB), so a 16 MiB
// pack lands in one buffer instead of a chain of doubling reallocations,
// each a fresh mapping to fault in and copy (most of restore's extra system
// time on S3).
struct BodySink {
  CURL* easy = nullptr;
  core::Bytes* body = nullptr;
  bool sized = false;
};
// CURLOPT_WRITEFUNCTION appending to BodySink::body.
size_t on_body(char* data, size_t size, size_t n, void* user);
// Points CURLOPT_WRITEFUNCTION/WRITEDATA of `e` at `sink` (which must
// outlive the transfer).
void receive_body(CURL* e, BodySink* sink);

// CURLOPT_READFUNCTION over a buffer (CURLOPT_READDATA = UploadCursor*).
struct UploadCursor {
  const uint8_t* data;
  size_t left;
};
size_t on_read(char* buffer, size_t size, size_t n, void* user);

// The wait before retry number `retry` (1 = the first retry): the cap doubles
// from `initial` up to `max`, and the wait is random in [cap/2, cap] so that
// many clients do not retry in step.
std::chrono::milliseconds jittered_backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                                           int retry);

}  // namespace cairn::storage::curl_kit
