// AWS Signature Version 4 for S3 requests (header-based auth), computed with
// OpenSSL's SHA-256 and HMAC: no dependency on libcurl's CURLOPT_AWS_SIGV4,
// so the signed bytes are exactly the ones we test against AWS's published
// examples (tests/unit/sigv4_test.cc).
//
// Pure functions, thread-safe. Nothing here logs: the secret key and the
// signature only ever leave through the returned headers.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.h"

namespace cairn::storage::sigv4 {

// SHA-256 of an empty body: the x-amz-content-sha256 of GET/HEAD/DELETE.
inline constexpr const char* kEmptyPayloadHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // "" = none; else sent and signed as x-amz-security-token
};

struct Request {
  std::string method;  // "GET", "PUT", ...
  std::string host;    // Host header value: "bucket.s3.amazonaws.com", "127.0.0.1:9000"
  // Decoded path, starting with '/': "/bucket/key". Encoded here, segment by
  // segment (S3 encodes each path segment once, keeping '/').
  std::string path;
  // Decoded query parameters; "?lifecycle" is {"lifecycle", ""}.
  std::vector<std::pair<std::string, std::string>> query;
  // Headers to send and sign besides host, x-amz-date, x-amz-content-sha256
  // and x-amz-security-token (which sign() adds): "Range", "Content-MD5", ...
  std::vector<std::pair<std::string, std::string>> headers;
  // Lower-case hex SHA-256 of the body (kEmptyPayloadHash for no body).
  std::string payload_hash = kEmptyPayloadHash;
};

struct Signed {
  // Every header to send, signed ones only, in canonical order, including
  // Host, X-Amz-Date, X-Amz-Content-Sha256, [X-Amz-Security-Token] and
  // Authorization. Names are lower case.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string canonical_query;  // for the URL: "list-type=2&prefix=a%2Fb"
  std::string canonical_uri;    // for the URL: "/bucket/test%24file.text"
  // Intermediate values, for tests only (they hold no secret).
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // lower-case hex
};

// RFC 3986 percent-encoding as SigV4 wants it: A-Z a-z 0-9 - _ . ~ kept,
// every other byte as %XX (upper-case hex); '/' is kept when !encode_slash.
std::string uri_encode(std::string_view s, bool encode_slash = true);

// "20130524T000000Z" for a Unix time.
std::string amz_date(int64_t unix_seconds);

// Lower-case hex SHA-256.
std::string sha256_hex(core::ByteView data);

// Signs `req` for `region` and `service` ("s3") at `date` ("YYYYMMDDTHHMMSSZ").
Signed sign(const Request& req, const Credentials& creds, const std::string& region,
            const std::string& service, const std::string& date);

}  // namespace cairn::storage::sigv4
