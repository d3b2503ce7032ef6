#include "storage/s3_backend.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <map>
#include <random>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "storage/curl_kit.h"
#include "storage/local_backend.h"
#include "storage/sigv4.h"

namespace cairn::storage {

struct S3Backend::Request {
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  Request(std::string method_, std::string key_, Pairs query_, core::ByteView body_, Pairs headers_)
      : method(std::move(method_)),
        key(std::move(key_)),
        query(std::move(query_)),
        body(body_),
        headers(std::move(headers_)) {}

  std::string method;  // GET, HEAD, PUT or DELETE
  std::string key;     // object key in the bucket; "" addresses the bucket itself
  std::vector<std::pair<std::string, std::string>> query;  // decoded; sigv4 encodes and sorts
  core::ByteView body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, all signed
  std::string body_sha256_hex;  // known hash of body ("" : hash it when signing)

  // "GET bucket/key", for messages (no secrets: those only live in the signer).
  std::string describe(const std::string& bucket) const {
    return method + " " + bucket + (key.empty() ? "" : "/" + key);
  }
};

struct S3Backend::Response {
  long status = 0;
  core::Bytes body;
  std::map<std::string, std::string> headers;  // lower-case names
  int attempts = 0;                            // tries it took

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Where a streamed GET's body goes: the sink while the answer is a success
// (200 or 206), else Response::body (an error document).
struct S3Backend::StreamTarget {
  const Backend::ByteSink* sink = nullptr;
  uint64_t range_start = 0;  // first byte asked for: a 200 (Range ignored) starts at 0
  uint64_t want = 0;         // bytes still wanted by the caller
  uint64_t delivered = 0;    // to the sink by this attempt
  uint64_t received = 0;     // success body bytes seen, skipped ones included
  core::Status error;        // the sink's, which ends the load
  CURL* easy = nullptr;
  core::Bytes* other = nullptr;
};

namespace {

using curl_kit::EasyPtr;
using curl_kit::global_init;
using curl_kit::HeaderList;
using curl_kit::on_read;
using curl_kit::parse_u64;
using curl_kit::UploadCursor;


// --- small helpers ---------------------------------------------------------------

// S3's limits for multipart uploads: every part but the last at least 5 MiB,
// at most 10,000 parts.
constexpr uint64_t kMinPartSize = 5ull << 20;
constexpr uint64_t kMaxParts = 10000;

core::Bytes digest(const EVP_MD* md, core::ByteView data) {
  static const uint8_t kEmpty = 0;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.empty() ? &kEmpty : data.data(), data.size(), out, &n, md, nullptr) != 1) {
    return {};
  }
  return core::Bytes(out, out + n);
}

std::string xml_unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s.substr(i);
      break;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out += '&';
    } else if (ent == "lt") {
      out += '<';
    } else if (ent == "gt") {
      out += '>';
    } else if (ent == "quot") {
      out += '"';
    } else if (ent == "apos") {
      out += '\'';
    } else if (ent.size() > 1 && ent[0] == '#') {
      unsigned code = 0;
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string_view digits = ent.substr(hex ? 2 : 1);
      auto [p, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), code, hex ? 16 : 10);
      if (ec != std::errc() || p != digits.data() + digits.size() || code > 0x7f) {
        out += s.substr(i, semi - i + 1);  // non-ASCII: never in our keys; keep verbatim
      } else {
        out += static_cast<char>(code);
      }
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

// Text of the first <tag>...</tag> in xml at or after *pos (advancing *pos
// past it), or nullopt.
std::optional<std::string_view> xml_element(std::string_view xml, std::string_view tag,
                                            size_t* pos = nullptr) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  size_t start = xml.find(open, pos ? *pos : 0);
  if (start == std::string_view::npos) return std::nullopt;
  start += open.size();
  size_t end = xml.find(close, start);
  if (end == std::string_view::npos) return std::nullopt;
  if (pos) *pos = end + close.size();
  return xml.substr(start, end - start);
}

// "Code: Message" of an S3 error body, or "".
std::string s3_error_detail(const core::Bytes& body) {
  std::string_view xml = core::as_chars(body);
  auto code = xml_element(xml, "Code");
  if (!code) return "";
  std::string out = xml_unescape(*code);
  if (auto msg = xml_element(xml, "Message")) out += ": " + xml_unescape(*msg);
  return out;
}

std::string s3_error_code(const core::Bytes& body) {
  auto code = xml_element(core::as_chars(body), "Code");
  return code ? std::string(*code) : std::string();
}


bool is_retryable_http(long status, const core::Bytes& body) {
  if (status >= 500 || status == 429) return true;
  // S3 answers 400 RequestTimeout when the client was too slow to send.
  return status == 400 && s3_error_code(body) == "RequestTimeout";
}


// --- libcurl callbacks (no exception may cross into C) -----------------------------


struct HeaderState {
  std::map<std::string, std::string>* headers;
  // The answer's Content-Range names bytes past the object's own size.
  bool impossible_range = false;
};

// "bytes FIRST-LAST/TOTAL" with LAST >= TOTAL cannot be delivered. s3rver
// sends that (with a Content-Length it never fulfils) for any range of an
// empty object, where S3 answers 416; the transfer would hang until the
// stall timeout.
bool impossible_content_range(std::string_view v) {
  if (!v.starts_with("bytes ")) return false;
  v.remove_prefix(6);
  size_t dash = v.find('-');
  size_t slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return false;
  }
  uint64_t last = 0;
  uint64_t total = 0;
  if (!parse_u64(v.substr(dash + 1, slash - dash - 1), &last)) return false;
  if (!parse_u64(v.substr(slash + 1), &total)) return false;  // "*" = unknown total
  return last >= total;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* state = static_cast<HeaderState*>(user);
  std::string_view line(data, size * n);
  try {
    if (line.starts_with("HTTP/")) {
      state->headers->clear();  // a new response (after "100 Continue", say)
      return size * n;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return size * n;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
      value.remove_suffix(1);
    }
    if (name == "content-range" && impossible_content_range(value)) {
      state->impossible_range = true;
      return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
    }
    (*state->headers)[name] = std::string(value);
  } catch (...) {
    return 0;
  }
  return size * n;
}



bool valid_bucket(const std::string& b) {
  if (b.empty() || b.size() > 255) return false;
  return std::all_of(b.begin(), b.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

// Prefix segments: non-empty, of [A-Za-z0-9._-], not "." or "..".
bool valid_prefix(const std::string& p) {
  size_t start = 0;
  while (start <= p.size()) {
    size_t slash = p.find('/', start);
    std::string seg =
        p.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (seg.empty() || seg == "." || seg == "..") return false;
    for (char c : seg) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
        return false;
      }
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

// "host" of "scheme://host[:port]" (IPv6 literals keep their brackets).
std::string host_of(const std::string& endpoint) {
  size_t start = endpoint.find("://");
  std::string authority = start == std::string::npos ? endpoint : endpoint.substr(start + 3);
  if (authority.starts_with("[")) return authority.substr(0, authority.find(']') + 1);
  return authority.substr(0, authority.find(':'));
}

// A bucket name that can be the first label(s) of a host name.
bool dns_compatible_bucket(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  if (b.front() == '-' || b.front() == '.' || b.back() == '-' || b.back() == '.') return false;
  if (b.find("..") != std::string::npos) return false;
  return std::all_of(b.begin(), b.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

}  // namespace

// --- options ------------------------------------------------------------------------

core::Result<S3Options> S3Options::from_location(const std::string& location,
                                                 const EnvLookup& env) {
  auto bad = [&](const std::string& why) {
    return core::invalid_argument("bad S3 location '" + location + "': " + why +
                                  " (use s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX])");
  };
  if (!location.starts_with("s3:")) return bad("does not start with s3:");
  std::string url = location.substr(3);
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return bad("no http:// or https:// endpoint");
  std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return bad("scheme must be http or https");
  size_t host_start = scheme_end + 3;
  size_t path_start = url.find('/', host_start);
  if (path_start == std::string::npos) return bad("no bucket");
  std::string host = url.substr(host_start, path_start - host_start);
  if (host.empty()) return bad("no host");
  if (host.find_first_of("@?#") != std::string::npos) {
    return bad("credentials, queries and fragments do not belong in the location");
  }
  std::string path = url.substr(path_start + 1);
  if (path.find_first_of("?#") != std::string::npos) return bad("queries are not allowed");
  while (!path.empty() && path.back() == '/') path.pop_back();
  size_t slash = path.find('/');
  S3Options o;
  o.endpoint = scheme + "://" + host;
  o.bucket = path.substr(0, slash);
  o.prefix = slash == std::string::npos ? "" : path.substr(slash + 1);
  if (!valid_bucket(o.bucket)) return bad("invalid bucket name '" + o.bucket + "'");
  if (!o.prefix.empty() && !valid_prefix(o.prefix)) {
    return bad("invalid prefix '" + o.prefix + "' (segments of letters, digits, '.', '-', '_')");
  }
  auto env_or = [&](const char* name, const std::string& fallback) {
    std::string v = env(name);
    return v.empty() ? fallback : v;
  };
  o.region = env_or("AWS_DEFAULT_REGION", env_or("AWS_REGION", "us-east-1"));
  o.ca_file = env_or("CAIRN_S3_CACERT", "");
  auto creds = resolve_aws_credentials(env);
  if (!creds.ok()) {
    return core::Status(creds.status().code(), "for " + location + ": " + creds.status().message());
  }
  o.access_key_id = creds->access_key_id;
  o.secret_access_key = creds->secret_access_key;
  o.session_token = creds->session_token;
  // Retry budget overrides (docs/storage.md), mainly so tests against faulty
  // servers finish quickly; unset or empty keeps the defaults.
  struct RetryKnob {
    const char* name;
    int64_t min, max;
    std::function<void(int64_t)> set;
  };
  const RetryKnob knobs[] = {
      {"CAIRN_S3_MAX_ATTEMPTS", 1, 100, [&](int64_t v) { o.max_attempts = static_cast<int>(v); }},
      {"CAIRN_S3_TIMEOUT_SECONDS", 1, 3600,
       [&](int64_t v) { o.stall_timeout = std::chrono::seconds(v); }},
      {"CAIRN_S3_MAX_RETRY_SECONDS", 0, 3600,
       [&](int64_t v) { o.max_total_backoff = std::chrono::seconds(v); }},
  };
  for (const RetryKnob& k : knobs) {
    const std::string text = env_or(k.name, "");
    if (text.empty()) continue;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size() || v < k.min || v > k.max) {
      return core::invalid_argument(std::string(k.name) + "='" + text +
                                    "' is not a whole number from " + std::to_string(k.min) +
                                    " to " + std::to_string(k.max));
    }
    k.set(v);
  }
  return o;
}

bool S3Options::virtual_host() const {
  switch (addressing) {
    case S3Addressing::kPath:
      return false;
    case S3Addressing::kVirtualHost:
      return true;
    case S3Addressing::kAuto:
      break;
  }
  // AWS wants virtual-host style (path style is deprecated there); other
  // servers mostly have no wildcard DNS for bucket names. A bucket whose
  // name cannot be a host label (or that has dots, which break the wildcard
  // certificate over https) stays on path style, as the AWS SDKs do.
  const std::string host = host_of(endpoint);
  return (host == "amazonaws.com" || host.ends_with(".amazonaws.com")) &&
         dns_compatible_bucket(bucket) &&
         (bucket.find('.') == std::string::npos || endpoint.starts_with("http://"));
}

core::Status S3Options::validate() const {
  if (addressing == S3Addressing::kVirtualHost && !dns_compatible_bucket(bucket)) {
    return core::invalid_argument("bucket name '" + bucket +
                                  "' cannot be used as a host name (virtual-host addressing needs "
                                  "3-63 lower-case letters, digits, '-' and '.'): use path style");
  }
  // The region goes into the credential scope and the CreateBucket XML.
  if (region.empty() || !std::all_of(region.begin(), region.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      })) {
    return core::invalid_argument("invalid S3 region '" + region +
                                  "' (AWS_DEFAULT_REGION: lower-case letters, digits and '-')");
  }
  if (connections < 1 || connections > 64) {
    return core::invalid_argument("S3 connections must be between 1 and 64, not " +
                                  std::to_string(connections));
  }
  if (part_size < kMinPartSize) {
    return core::invalid_argument("S3 part size must be at least 5 MiB (S3's minimum), not " +
                                  std::to_string(part_size) + " bytes");
  }
  return core::ok_status();
}

// --- shared curl state ---------------------------------------------------------------

struct S3Backend::Shared : curl_kit::Share {};

S3Backend::S3Backend(S3Options options) : options_(std::move(options)) {
  global_init();
  shared_ = std::make_unique<Shared>();
}

S3Backend::~S3Backend() = default;

std::string S3Backend::location() const {
  return "s3:" + options_.endpoint + "/" + options_.bucket +
         (options_.prefix.empty() ? "" : "/" + options_.prefix);
}

std::string S3Backend::key_of(const Handle& h) const {
  return options_.prefix.empty() ? h.to_string() : options_.prefix + "/" + h.to_string();
}

// --- requests ------------------------------------------------------------------------

namespace {

// CURLOPT_WRITEFUNCTION of a streamed GET (WRITEDATA = StreamTarget*).
size_t on_stream_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<S3Backend::StreamTarget*>(user);
  const size_t len = size * n;
  long code = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
  if (code != 200 && code != 206) {
    t->other->insert(t->other->end(), data, data + len);
    return len;
  }
  // Bytes before range_start in a 200, and any after the wanted ones, are dropped.
  const uint64_t first = t->received;
  t->received += len;
  const uint64_t start = code == 200 ? t->range_start : 0;
  if (t->received <= start || t->want == 0) return len;
  const uint64_t skip = first < start ? start - first : 0;
  const uint64_t take = std::min<uint64_t>(len - skip, t->want);
  t->error = (*t->sink)(core::ByteView(reinterpret_cast<const uint8_t*>(data) + skip, take));
  if (!t->error.ok()) return 0;  // aborts the transfer
  t->want -= take;
  t->delivered += take;
  return len;
}

}  // namespace

core::Result<S3Backend::Response> S3Backend::perform_once(const Request& req,
                                                          StreamTarget* stream) {
  const std::string what = "s3 " + req.describe(options_.bucket);
  EasyPtr easy(curl_easy_init());
  if (!easy) return core::io_error(what + ": curl_easy_init failed");
  CURL* e = easy.get();

  // Where the request goes: https://host/bucket/key or https://bucket.host/key.
  const size_t scheme_end = options_.endpoint.find("://") + 3;
  const std::string scheme = options_.endpoint.substr(0, scheme_end);
  std::string authority = options_.endpoint.substr(scheme_end);
  sigv4::Request sreq;
  sreq.method = req.method;
  if (options_.virtual_host()) {
    authority = options_.bucket + "." + authority;
    sreq.path = "/" + req.key;
  } else {
    sreq.path = "/" + options_.bucket + (req.key.empty() ? "" : "/" + req.key);
  }
  sreq.host = authority;
  sreq.query = req.query;
  sreq.headers = req.headers;
  // The real hash of the body, never UNSIGNED-PAYLOAD: S3 then rejects a
  // body that changed on the way.
  sreq.payload_hash = req.body.empty()               ? sigv4::kEmptyPayloadHash
                      : !req.body_sha256_hex.empty() ? req.body_sha256_hex
                                                     : sigv4::sha256_hex(req.body);
  const sigv4::Signed signed_req = sigv4::sign(
      sreq, {options_.access_key_id, options_.secret_access_key, options_.session_token},
      options_.region, "s3", sigv4::amz_date(std::time(nullptr)));
  const std::string url =
      scheme + authority + signed_req.canonical_uri +
      (signed_req.canonical_query.empty() ? "" : "?" + signed_req.canonical_query);

  HeaderList headers;
  bool headers_ok = true;
  for (const auto& [name, value] : signed_req.headers)
    headers_ok &= headers.append(name + ": " + value);
  if (!headers_ok) return core::io_error(what + ": out of memory building headers");
  HeaderList resolve;
  for (const auto& entry : options_.resolve) {
    if (!resolve.append(entry)) return core::io_error(what + ": out of memory building headers");
  }

  Response resp;
  char errbuf[CURL_ERROR_SIZE] = {0};
  UploadCursor cursor{req.body.data(), req.body.size()};
  HeaderState header_state{&resp.headers};

  curl_kit::set_transport(e, {url.c_str(), errbuf, shared_->share, headers.get(), options_.connect_timeout,
                              options_.stall_timeout, options_.insecure_tls, options_.ca_file});
  if (resolve.get() != nullptr) curl_easy_setopt(e, CURLOPT_RESOLVE, resolve.get());
  curl_kit::BodySink body_sink{e, &resp.body};
  if (stream != nullptr) {
    stream->easy = e;
    stream->other = &resp.body;
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_stream_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, stream);
  } else {
    curl_kit::receive_body(e, &body_sink);
  }
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &header_state);
  if (req.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, &on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, &cursor);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method == "POST") {
    // Multipart calls: the body (if any) is a small XML document.
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS,
                     req.body.empty() ? "" : reinterpret_cast<const char*>(req.body.data()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  CURLcode rc = curl_easy_perform(e);
  if (rc == CURLE_WRITE_ERROR && stream != nullptr && !stream->error.ok()) return stream->error;
  if (rc == CURLE_WRITE_ERROR && header_state.impossible_range) {
    resp.status = 416;  // what S3 itself answers
    resp.body.clear();
    return resp;
  }
  if (rc != CURLE_OK) {
    std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
    if (curl_kit::is_transient(rc)) return core::Status(core::Code::kTransient, what + ": " + detail);
    if (rc == CURLE_PEER_FAILED_VERIFICATION) {
      // Not kTransient: retrying cannot make a certificate trusted.
      return core::io_error(what + ": the server's TLS certificate is not trusted (" + detail +
                            "); for a private CA pass its certificate with --cacert FILE (or "
                            "CAIRN_S3_CACERT)");
    }
    if (rc == CURLE_SSL_CACERT_BADFILE) {
      return core::invalid_argument(what + ": cannot use CA file '" + options_.ca_file +
                                    "': " + detail);
    }
    return core::io_error(what + ": " + detail);
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

namespace {

// A connection closed early can look like a complete answer to libcurl (an
// empty body without Content-Length, or a listing cut short). Such an answer
// is retried, never taken as "empty object" or "no more keys".
std::string incomplete_answer(const S3Backend::Request& req, const S3Backend::Response& resp) {
  if (resp.status != 200 && resp.status != 206) return {};
  if (req.method == "HEAD") return resp.headers.count("content-length") ? "" : "answer without Content-Length";
  if (req.method != "GET") return {};
  if (req.key.empty()) {  // a listing: S3 may send it chunked, so look at the XML
    std::string_view body = core::as_chars(resp.body);
    return body.find("</ListBucketResult>") != std::string_view::npos ? "" : "incomplete listing";
  }
  uint64_t declared = 0;
  if (!parse_u64(resp.header("content-length"), &declared)) return "answer without Content-Length";
  if (declared != resp.body.size())
    return "answer cut short (" + std::to_string(resp.body.size()) + " of " + std::to_string(declared) + " bytes)";
  return {};
}

}  // namespace

core::Result<S3Backend::Response> S3Backend::call(const Request& req) {
  const int max_attempts = std::max(1, options_.max_attempts);
  std::chrono::milliseconds waited{0};
  core::Status last;
  for (int attempt = 1;; ++attempt) {
    auto r = perform_once(req);
    if (r.ok()) {
      r->attempts = attempt;
      std::string cut = incomplete_answer(req, *r);
      if (cut.empty() && !is_retryable_http(r->status, r->body)) return r;
      std::string detail = cut.empty() ? s3_error_detail(r->body) : cut;
      last = core::Status(core::Code::kTransient, "s3 " + req.describe(options_.bucket) +
                                                      ": HTTP " + std::to_string(r->status) +
                                                      (detail.empty() ? "" : " " + detail));
    } else if (r.status().code() == core::Code::kTransient) {
      last = r.status();
    } else {
      return r.status();
    }
    if (attempt >= max_attempts || !wait_to_retry(attempt, waited)) {
      return core::Status(core::Code::kTransient, last.message() + " (gave up after " +
                                                      std::to_string(attempt) + " attempts)");
    }
  }
}

bool S3Backend::wait_to_retry(int attempt, std::chrono::milliseconds& waited) {
  std::chrono::milliseconds budget = options_.max_total_backoff - waited;
  if (budget.count() <= 0) return false;
  std::chrono::milliseconds delay = std::min(
      curl_kit::jittered_backoff(options_.initial_backoff, options_.max_backoff, attempt), budget);
  std::this_thread::sleep_for(delay);
  waited += delay;
  return true;
}

core::Status S3Backend::error_of(const Request& req, const Response& resp) const {
  const std::string what = "s3 " + req.describe(options_.bucket);
  const std::string detail = s3_error_detail(resp.body);
  const std::string http =
      "HTTP " + std::to_string(resp.status) + (detail.empty() ? "" : " " + detail);
  if (resp.status == 401 || resp.status == 403) {
    return core::Status(core::Code::kPermissionDenied,
                        what + ": access denied (" + http +
                            "); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's "
                            "permissions");
  }
  if (resp.status == 404) {
    if (s3_error_code(resp.body) == "NoSuchBucket") {
      return core::not_found("bucket " + options_.bucket + " does not exist at " +
                             options_.endpoint);
    }
    return core::not_found(what + ": no such object");
  }
  if (resp.status == 412) return core::already_exists(what + ": object already exists");
  if (resp.status == 416) return core::invalid_argument(what + ": range not satisfiable");
  if (is_retryable_http(resp.status, resp.body)) {
    return core::Status(core::Code::kTransient, what + ": " + http);
  }
  return core::io_error(what + ": unexpected answer " + http);
}

core::Status S3Backend::check_bucket() {
  Request req{"HEAD", "", {}, {}, {}};
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status == 200) return core::ok_status();
  if (resp.status == 404) {
    // HEAD answers carry no body, so the bucket is named here.
    return core::not_found("bucket " + options_.bucket + " does not exist at " + options_.endpoint +
                           " (create it with your provider's tools, or let 'cairn init "
                           "--create-bucket' create it)");
  }
  return error_of(req, resp);
}

core::Result<bool> S3Backend::object_exists(const std::string& key) {
  Request req{"HEAD", key, {}, {}, {}};
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status == 200) return true;
  if (resp.status == 404) return false;
  return error_of(req, resp);
}

// --- Backend -------------------------------------------------------------------------

core::Status S3Backend::save(const Handle& h, core::ByteView data) {
  return save_with(h, data, SaveOptions{});
}

core::Status S3Backend::save_with(const Handle& h, core::ByteView data,
                                  const SaveOptions& options) {
  TRY(LocalBackend::check_handle(h));
  const std::string key = key_of(h);

  // Saves of one key in this process take turns, so the HEAD below sees the
  // winner's object and exactly one save succeeds. Another process can still
  // slip in between HEAD and PUT: servers that honour "If-None-Match: *"
  // (AWS S3) then answer 412; others (s3rver, older MinIO) let the later PUT
  // replace the object. Content-addressed names make that replacement carry
  // identical bytes; lock files have random names.
  {
    std::unique_lock<std::mutex> lock(saving_mu_);
    saving_cv_.wait(lock, [&] { return saving_.count(key) == 0; });
    saving_.insert(key);
  }
  struct Release {
    S3Backend* self;
    const std::string& key;
    ~Release() {
      {
        std::lock_guard<std::mutex> lock(self->saving_mu_);
        self->saving_.erase(key);
      }
      self->saving_cv_.notify_all();
    }
  } release{this, key};

  ASSIGN_OR_RETURN(bool present, object_exists(key));
  if (present) {
    return core::already_exists("s3 " + options_.bucket + "/" + key +
                                ": object already exists (objects are immutable)");
  }
  if (data.size() > options_.multipart_threshold) return save_multipart(key, data);
  Request req{"PUT", key, {}, data, {{"If-None-Match", "*"}}};
  if (options.sha256_hex.size() == 64) {
    // The body's integrity rides on the SHA-256 the caller has: signed as the
    // payload hash and sent as an additional checksum, both of which the
    // server checks. No MD5 pass over a 16 MiB pack.
    req.body_sha256_hex = options.sha256_hex;
    auto raw = core::hex_decode(options.sha256_hex);
    if (!raw) return core::invalid_argument(h.to_string() + ": sha256_hex is not hex");
    req.headers.push_back({"x-amz-checksum-sha256", core::base64_encode(*raw)});
  } else {
    req.headers.push_back({"Content-MD5", core::base64_encode(digest(EVP_md5(), data))});
  }
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status == 200 || resp.status == 201 || resp.status == 204) return core::ok_status();
  if (resp.status == 412 && resp.attempts > 1) {
    // An earlier attempt may have stored the object before its answer got
    // lost: if the stored object has our bytes, that attempt was ours.
    Request head{"HEAD", key, {}, {}, {}};
    ASSIGN_OR_RETURN(Response stored, call(head));
    const std::string etag = "\"" + core::hex_encode(digest(EVP_md5(), data)) + "\"";
    if (stored.status == 200 && stored.header("etag") == etag) return core::ok_status();
  }
  return error_of(req, resp);
}

namespace {

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

core::Status S3Backend::save_multipart(const std::string& key, core::ByteView data) {
  Request create{"POST", key, {{"uploads", ""}}, {}, {{"Content-Type", "application/octet-stream"}}};
  ASSIGN_OR_RETURN(Response created, call(create));
  if (created.status != 200) return error_of(create, created);
  auto id = xml_element(core::as_chars(created.body), "UploadId");
  if (!id || id->empty()) {
    return core::io_error("s3 " + create.describe(options_.bucket) +
                          ": CreateMultipartUpload answered without an UploadId");
  }
  const std::string upload_id = xml_unescape(*id);
  core::Status st = upload_parts(key, upload_id, data);
  if (!st.ok()) {
    // Best effort: parts of an upload that is never completed are invisible
    // but billed; a bucket lifecycle rule (AbortIncompleteMultipartUpload,
    // docs/storage.md) catches what a killed process leaves behind.
    Request abort{"DELETE", key, {{"uploadId", upload_id}}, {}, {}};
    (void)call(abort);
  }
  return st;
}

core::Status S3Backend::upload_parts(const std::string& key, const std::string& upload_id,
                                     core::ByteView data) {
  const uint64_t part_size =
      std::max(options_.part_size, (data.size() + kMaxParts - 1) / kMaxParts);
  std::string manifest = "<CompleteMultipartUpload>";
  uint64_t parts = 0;
  for (uint64_t offset = 0; offset < data.size(); offset += part_size) {
    const std::string number = std::to_string(++parts);
    core::ByteView piece = data.subspan(offset, std::min<uint64_t>(part_size, data.size() - offset));
    Request put{"PUT",
                key,
                {{"partNumber", number}, {"uploadId", upload_id}},
                piece,
                {{"Content-MD5", core::base64_encode(digest(EVP_md5(), piece))}}};
    ASSIGN_OR_RETURN(Response resp, call(put));
    if (resp.status != 200) return error_of(put, resp).with_context("part " + number);
    const std::string etag = resp.header("etag");
    if (etag.empty()) {
      return core::io_error("s3 " + put.describe(options_.bucket) + ": part " + number +
                            " answered without an ETag");
    }
    manifest += "<Part><PartNumber>" + number + "</PartNumber><ETag>" + xml_escape(etag) +
                "</ETag></Part>";
  }
  manifest += "</CompleteMultipartUpload>";

  Request complete{"POST",
                   key,
                   {{"uploadId", upload_id}},
                   core::as_bytes(manifest),
                   {{"Content-Type", "application/xml"}, {"If-None-Match", "*"}}};
  // S3 may answer 200 and still fail: the error is then in the body, and the
  // request is to be retried (AWS's CompleteMultipartUpload documentation).
  for (int attempt = 1;; ++attempt) {
    ASSIGN_OR_RETURN(Response resp, call(complete));
    const std::string_view body = core::as_chars(resp.body);
    if (resp.status == 200 && body.find("<CompleteMultipartUploadResult") != std::string_view::npos) {
      return core::ok_status();
    }
    const bool answered_late = attempt > 1 || resp.attempts > 1;
    if (answered_late && (resp.status == 404 || resp.status == 412)) {
      // An earlier try completed the upload but its answer got lost: the
      // object is there with our size (names are content-addressed).
      Request head{"HEAD", key, {}, {}, {}};
      ASSIGN_OR_RETURN(Response stored, call(head));
      uint64_t size = 0;
      if (stored.status == 200 && parse_u64(stored.header("content-length"), &size) &&
          size == data.size()) {
        return core::ok_status();
      }
    }
    if (resp.status != 200) return error_of(complete, resp);
    if (attempt >= std::max(1, options_.max_attempts)) {
      return core::Status(core::Code::kTransient,
                          "s3 " + complete.describe(options_.bucket) +
                              ": CompleteMultipartUpload failed: " + s3_error_detail(resp.body) +
                              " (gave up after " + std::to_string(attempt) + " attempts)");
    }
    std::this_thread::sleep_for(curl_kit::jittered_backoff(options_.initial_backoff,
                                                           options_.max_backoff, attempt));
  }
}

namespace {

// The one wording of load()'s and load_stream()'s "range beyond the end".
core::Status range_beyond_end(const std::string& object, uint64_t offset, uint64_t length,
                              const std::string& size) {
  return core::invalid_argument("s3 " + object + ": range [" + std::to_string(offset) + ", +" +
                                std::to_string(length) + ") is beyond the end (size " + size + ")");
}

}  // namespace

core::Result<core::Bytes> S3Backend::load(const Handle& h, uint64_t offset, uint64_t length) {
  TRY(LocalBackend::check_handle(h));
  const std::string key = key_of(h);
  auto beyond_end = [&](const std::string& size) {
    return range_beyond_end(options_.bucket + "/" + key, offset, length, size);
  };
  auto size_for_message = [&]() -> core::Result<std::string> {
    ASSIGN_OR_RETURN(FileInfo info, stat(h));
    return std::to_string(info.size);
  };
  if (length > UINT64_MAX - offset) {
    ASSIGN_OR_RETURN(std::string size, size_for_message());
    return beyond_end(size);
  }

  Request req{"GET", key, {}, {}, {}};
  if (offset != 0 || length != 0) {
    std::string range = "bytes=" + std::to_string(offset) + "-";
    if (length != 0) range += std::to_string(offset + length - 1);
    req.headers.emplace_back("Range", range);
  }
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status == 416) {
    // Also the answer for "bytes=SIZE-", which asks for the empty tail.
    ASSIGN_OR_RETURN(FileInfo info, stat(h));
    if (length == 0 && offset == info.size) return core::Bytes{};
    return beyond_end(std::to_string(info.size));
  }
  if (resp.status == 206) {
    // A range that starts inside the object but runs past its end is cut
    // short by S3: that is a range beyond the end for us.
    if (length != 0 && resp.body.size() != length) {
      std::string total = resp.header("content-range");
      size_t slash = total.rfind('/');
      return beyond_end(slash == std::string::npos ? "unknown" : total.substr(slash + 1));
    }
    return std::move(resp.body);
  }
  if (resp.status == 200) {
    // The whole object (no Range sent, or a server that ignores Range).
    const uint64_t size = resp.body.size();
    if (offset > size || length > size - offset) return beyond_end(std::to_string(size));
    if (offset == 0 && (length == 0 || length == size)) return std::move(resp.body);
    const uint64_t n = length == 0 ? size - offset : length;
    return core::Bytes(resp.body.begin() + static_cast<ptrdiff_t>(offset),
                       resp.body.begin() + static_cast<ptrdiff_t>(offset + n));
  }
  return error_of(req, resp);
}

core::Status S3Backend::load_stream(const Handle& h, uint64_t offset, uint64_t length,
                                    const ByteSink& sink) {
  TRY(LocalBackend::check_handle(h));
  const std::string key = key_of(h);
  auto beyond_end = [&]() -> core::Status {
    ASSIGN_OR_RETURN(FileInfo info, stat(h));
    return range_beyond_end(options_.bucket + "/" + key, offset, length, std::to_string(info.size));
  };
  if (length == 0) return core::invalid_argument(h.to_string() + ": load_stream needs a length");
  if (length > UINT64_MAX - offset) return beyond_end();
  uint64_t done = 0;
  std::chrono::milliseconds waited{0};
  core::Status last;
  for (int attempt = 1;; ++attempt) {
    StreamTarget target;
    target.sink = &sink;
    target.range_start = offset + done;
    target.want = length - done;
    Request req{"GET",
                key,
                {},
                {},
                {{"Range", "bytes=" + std::to_string(offset + done) + "-" +
                               std::to_string(offset + length - 1)}}};
    auto r = perform_once(req, &target);
    done += target.delivered;
    if (!target.error.ok()) return target.error;  // the sink's: never retried
    if (r.ok()) {
      const bool success = r->status == 200 || r->status == 206;
      if (success && done == length) return core::ok_status();
      uint64_t declared = 0;
      if (r->status == 416 || (success && parse_u64(r->header("content-length"), &declared) &&
                               declared == target.received)) {
        return beyond_end();  // a whole answer, but the object ends before the range does
      }
      if (!success && !is_retryable_http(r->status, r->body)) return error_of(req, *r);
      last = core::Status(core::Code::kTransient,
                          "s3 " + req.describe(options_.bucket) + ": HTTP " +
                              std::to_string(r->status) +
                              (success ? " answer cut short" : " " + s3_error_detail(r->body)));
    } else if (r.status().code() == core::Code::kTransient) {
      last = r.status();
    } else {
      return r.status();
    }
    // The next attempt asks only for what the sink has not had yet.
    if (attempt >= std::max(1, options_.max_attempts) || !wait_to_retry(attempt, waited)) {
      return core::Status(core::Code::kTransient, last.message() + " (gave up after " +
                                                      std::to_string(attempt) + " attempts)");
    }
  }
}

core::Result<FileInfo> S3Backend::stat(const Handle& h) {
  TRY(LocalBackend::check_handle(h));
  Request req{"HEAD", key_of(h), {}, {}, {}};
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status != 200) return error_of(req, resp);
  uint64_t size = 0;
  if (!parse_u64(resp.header("content-length"), &size)) {
    return core::io_error("s3 " + req.describe(options_.bucket) +
                          ": answer has no valid Content-Length");
  }
  return FileInfo{h.name, size};
}

core::Status S3Backend::list(FileType t, const std::function<void(const FileInfo&)>& fn) {
  if (t == FileType::kConfig) {
    auto info = stat(Handle{FileType::kConfig, "config"});
    if (info.ok()) fn(*info);
    if (info.ok() || info.status().code() == core::Code::kNotFound) return core::ok_status();
    return info.status();
  }
  const std::string dir = std::string(type_dir(t)) + "/";
  const std::string prefix = options_.prefix.empty() ? dir : options_.prefix + "/" + dir;
  std::string token;
  for (;;) {
    Request req{"GET", "", {}, {}, {}};
    if (!token.empty()) req.query.emplace_back("continuation-token", token);
    req.query.emplace_back("list-type", "2");
    req.query.emplace_back("max-keys",
                           std::to_string(std::clamp(options_.list_page_size, 1, 1000)));
    req.query.emplace_back("prefix", prefix);
    ASSIGN_OR_RETURN(Response resp, call(req));
    if (resp.status != 200) return error_of(req, resp);

    const std::string_view xml = core::as_chars(resp.body);
    size_t pos = 0;
    while (auto contents = xml_element(xml, "Contents", &pos)) {
      auto key = xml_element(*contents, "Key");
      auto size_text = xml_element(*contents, "Size");
      uint64_t size = 0;
      if (!key || !size_text || !parse_u64(*size_text, &size)) {
        return core::io_error("s3 list " + options_.bucket + "/" + prefix +
                              ": malformed ListObjectsV2 answer");
      }
      std::string rel = xml_unescape(*key);
      if (!rel.starts_with(prefix)) continue;
      rel.erase(0, prefix.size());
      // Packs live one fan-out level down ("ab/abcd..."); other types directly.
      std::string name = rel;
      if (t == FileType::kPack) {
        size_t slash = rel.find('/');
        if (slash == std::string::npos || rel.find('/', slash + 1) != std::string::npos) continue;
        name = rel.substr(slash + 1);
        if (rel.substr(0, slash) != name.substr(0, 2)) continue;
      }
      // Foreign objects (made by other tools) are not reported.
      if (!LocalBackend::check_handle(Handle{t, name}).ok()) continue;
      fn(FileInfo{name, size});
    }
    auto truncated = xml_element(xml, "IsTruncated");
    if (!truncated || *truncated != "true") return core::ok_status();
    auto next = xml_element(xml, "NextContinuationToken");
    if (!next || next->empty()) {
      return core::io_error("s3 list " + options_.bucket + "/" + prefix +
                            ": truncated answer without a continuation token");
    }
    token = xml_unescape(*next);
  }
}

core::Status S3Backend::remove(const Handle& h) {
  TRY(LocalBackend::check_handle(h));
  Request req{"DELETE", key_of(h), {}, {}, {}};
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status == 200 || resp.status == 204) return core::ok_status();
  // A missing object is success; a missing bucket is not.
  if (resp.status == 404 && s3_error_code(resp.body) != "NoSuchBucket") return core::ok_status();
  return error_of(req, resp);
}

core::Result<bool> S3Backend::exists() {
  ASSIGN_OR_RETURN(bool config, object_exists(key_of(Handle{FileType::kConfig, "config"})));
  if (config) return true;
  // A 404 from HEAD does not say whether the object or the bucket is missing.
  TRY(check_bucket());
  return false;
}

core::Status S3Backend::create_container() {
  Request head{"HEAD", "", {}, {}, {}};
  ASSIGN_OR_RETURN(Response found, call(head));
  if (found.status == 200) return core::ok_status();
  if (found.status != 404) return error_of(head, found);
  // us-east-1 is the default and AWS refuses it as an explicit constraint.
  std::string body;
  if (options_.region != "us-east-1") {
    body =
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<LocationConstraint>" +
        options_.region + "</LocationConstraint></CreateBucketConfiguration>";
  }
  Request req{"PUT", "", {}, core::as_bytes(body), {}};
  ASSIGN_OR_RETURN(Response resp, call(req));
  if (resp.status == 200) return core::ok_status();
  // Another init made it in the meantime (409 BucketAlreadyOwnedByYou).
  if (resp.status == 409 && s3_error_code(resp.body) == "BucketAlreadyOwnedByYou") {
    return core::ok_status();
  }
  if (resp.status == 409) {
    return core::already_exists("bucket " + options_.bucket + " cannot be created at " +
                                options_.endpoint + ": " + s3_error_detail(resp.body) +
                                " (bucket names are global on AWS: pick another)");
  }
  return error_of(req, resp).with_context("creating bucket " + options_.bucket);
}

core::Status S3Backend::create() {
  TRY(check_bucket());
  ASSIGN_OR_RETURN(bool config, object_exists(key_of(Handle{FileType::kConfig, "config"})));
  if (config) return core::already_exists(location() + ": a repository already exists here");
  // Nothing else to make: S3 has no folders.
  return core::ok_status();
}

}  // namespace cairn::storage
