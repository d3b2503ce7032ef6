#include "storage/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace cairn::storage::sigv4 {

namespace {

std::string to_hex(const unsigned char* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
  return out;
}

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  static const unsigned char kEmpty = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       data.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       out, &n);
  return std::string(reinterpret_cast<const char*>(out), n);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Canonical header value: leading/trailing blanks removed, inner runs of
// blanks collapsed to one space.
std::string trim_value(std::string_view v) {
  std::string out;
  bool blank = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      blank = !out.empty();
      continue;
    }
    if (blank) out += ' ';
    blank = false;
    out += c;
  }
  return out;
}

}  // namespace

std::string uri_encode(std::string_view s, bool encode_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string amz_date(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string sha256_hex(core::ByteView data) {
  static const uint8_t kEmpty = 0;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.empty() ? &kEmpty : data.data(), data.size(), out, &n, EVP_sha256(), nullptr);
  return to_hex(out, n);
}

Signed sign(const Request& req, const Credentials& creds, const std::string& region,
            const std::string& service, const std::string& date) {
  Signed out;
  out.canonical_uri = uri_encode(req.path.empty() ? "/" : req.path, false);

  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [k, v] : req.query) query.emplace_back(uri_encode(k), uri_encode(v));
  std::sort(query.begin(), query.end());
  for (const auto& [k, v] : query) {
    if (!out.canonical_query.empty()) out.canonical_query += '&';
    out.canonical_query += k + "=" + v;
  }

  std::vector<std::pair<std::string, std::string>> headers;
  headers.emplace_back("host", trim_value(req.host));
  headers.emplace_back("x-amz-date", date);
  headers.emplace_back("x-amz-content-sha256", req.payload_hash);
  if (!creds.session_token.empty()) {
    headers.emplace_back("x-amz-security-token", trim_value(creds.session_token));
  }
  for (const auto& [name, value] : req.headers)
    headers.emplace_back(lower(name), trim_value(value));
  std::sort(headers.begin(), headers.end());

  std::string canonical_headers;
  std::string signed_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ":" + value + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += name;
  }
  out.canonical_request = req.method + "\n" + out.canonical_uri + "\n" + out.canonical_query +
                          "\n" + canonical_headers + "\n" + signed_headers + "\n" +
                          req.payload_hash;

  const std::string day = date.substr(0, 8);
  const std::string scope = day + "/" + region + "/" + service + "/aws4_request";
  out.string_to_sign = "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" +
                       sha256_hex(core::as_bytes(out.canonical_request));

  std::string key = hmac("AWS4" + creds.secret_access_key, day);
  key = hmac(key, region);
  key = hmac(key, service);
  key = hmac(key, "aws4_request");
  const std::string sig = hmac(key, out.string_to_sign);
  out.signature = to_hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());

  out.headers = std::move(headers);
  out.headers.emplace_back("authorization", "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id +
                                                "/" + scope + ",SignedHeaders=" + signed_headers +
                                                ",Signature=" + out.signature);
  return out;
}

}  // namespace cairn::storage::sigv4
