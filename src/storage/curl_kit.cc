#include "storage/curl_kit.h"

#include <algorithm>
#include <charconv>
#include <mutex>
#include <random>

namespace cairn::storage::curl_kit {

bool HeaderList::append(const std::string& line) {
  curl_slist* next = curl_slist_append(list_, line.c_str());
  if (next == nullptr) return false;
  list_ = next;
  return true;
}

Share::Share() {
  share = curl_share_init();
  if (share == nullptr) return;
  curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Share::lock);
  curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Share::unlock);
  curl_share_setopt(share, CURLSHOPT_USERDATA, this);
  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
}

Share::~Share() {
  if (share != nullptr) curl_share_cleanup(share);
}

void Share::lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
  static_cast<Share*>(user)->locks_[data].lock();
}

void Share::unlock(CURL*, curl_lock_data data, void* user) {
  static_cast<Share*>(user)->locks_[data].unlock();
}

void set_transport(CURL* e, const Transport& t) {
  curl_easy_setopt(e, CURLOPT_URL, t.url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error_buffer);
  if (t.share != nullptr) {
    curl_easy_setopt(e, CURLOPT_SHARE, t.share);
    // The shared cache closes its oldest idle connection whenever it holds
    // more than this; curl's default of 5 is below the 8-16 requests a
    // backup, restore or index load keeps in flight, so nearly every request
    // opened a new TLS connection (30 handshakes for a 31-pack restore).
    curl_easy_setopt(e, CURLOPT_MAXCONNECTS, kMaxSharedConnections);
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(t.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(t.stall_timeout.count()));
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, t.insecure_tls ? 0L : 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, t.insecure_tls ? 0L : 2L);
  if (!t.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, t.ca_file.c_str());
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool is_transient(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  core::Bytes* body = sink->body;
  try {
    if (!sink->sized) {
      sink->sized = true;
      curl_off_t announced = -1;
      if (curl_easy_getinfo(sink->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) == CURLE_OK &&
          announced > 0 && announced <= (curl_off_t{256} << 20)) {
        body->reserve(body->size() + static_cast<size_t>(announced));
      }
    }
    body->insert(body->end(), data, data + size * n);
  } catch (...) {
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  return size * n;
}

void receive_body(CURL* e, BodySink* sink) {
  sink->easy = e;
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, sink);
}

size_t on_read(char* buffer, size_t size, size_t n, void* user) {
  auto* cur = static_cast<UploadCursor*>(user);
  size_t take = std::min(size * n, cur->left);
  std::copy_n(cur->data, take, buffer);
  cur->data += take;
  cur->left -= take;
  return take;
}

std::chrono::milliseconds jittered_backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                                           int retry) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  int64_t cap = initial.count();
  for (int i = 1; i < retry && cap < max.count(); ++i) cap *= 2;
  cap = std::min<int64_t>(cap, max.count());
  if (cap <= 0) return std::chrono::milliseconds(0);
  std::uniform_int_distribution<int64_t> dist(cap / 2, cap);
  return std::chrono::milliseconds(dist(rng));
}

}  // namespace cairn::storage::curl_kit
