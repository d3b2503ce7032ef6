// storage::sigv4 against the examples AWS publishes for S3 header-based
// SigV4 auth ("Examples: Signature Calculations in AWS Signature Version 4",
// Amazon S3 API reference): same credentials, date, bucket and headers, so
// the signatures must match byte for byte.
#include "storage/sigv4.h"

#include <gtest/gtest.h>

#include <string>

namespace cairn::storage::sigv4 {
namespace {

const Credentials kCreds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const char* kDate = "20130524T000000Z";
const char* kHost = "examplebucket.s3.amazonaws.com";

std::string header(const Signed& s, const std::string& name) {
  for (const auto& [n, v] : s.headers) {
    if (n == name) return v;
  }
  return "<missing>";
}

TEST(SigV4Test, GetObjectWithRange) {
  Request req;
  req.method = "GET";
  req.host = kHost;
  req.path = "/test.txt";
  req.headers = {{"Range", "bytes=0-9"}};
  Signed s = sign(req, kCreds, "us-east-1", "s3", kDate);
  EXPECT_EQ(s.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(header(s, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(header(s, "x-amz-content-sha256"), kEmptyPayloadHash);
  EXPECT_EQ(header(s, "x-amz-date"), kDate);
  EXPECT_EQ(header(s, "host"), kHost);
}

TEST(SigV4Test, PutObjectSignsThePayloadHash) {
  const std::string body = "Welcome to Amazon S3.";
  Request req;
  req.method = "PUT";
  req.host = kHost;
  req.path = "/test$file.text";
  req.headers = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                 {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  req.payload_hash = sha256_hex(core::as_bytes(body));
  EXPECT_EQ(req.payload_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  Signed s = sign(req, kCreds, "us-east-1", "s3", kDate);
  EXPECT_EQ(s.canonical_uri, "/test%24file.text");
  EXPECT_EQ(s.canonical_request,
            "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:"
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
            "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  EXPECT_EQ(header(s, "x-amz-content-sha256"), req.payload_hash);
}

TEST(SigV4Test, GetBucketLifecycle) {
  Request req;
  req.method = "GET";
  req.host = kHost;
  req.path = "/";
  req.query = {{"lifecycle", ""}};
  Signed s = sign(req, kCreds, "us-east-1", "s3", kDate);
  EXPECT_EQ(s.canonical_query, "lifecycle=");
  EXPECT_EQ(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4Test, ListObjectsSortsTheQuery) {
  Request req;
  req.method = "GET";
  req.host = kHost;
  req.path = "/";
  req.query = {{"prefix", "J"}, {"max-keys", "2"}};  // out of order on purpose
  Signed s = sign(req, kCreds, "us-east-1", "s3", kDate);
  EXPECT_EQ(s.canonical_query, "max-keys=2&prefix=J");
  EXPECT_EQ(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4Test, RegionIsInTheCredentialScope) {
  Request req;
  req.method = "GET";
  req.host = kHost;
  req.path = "/test.txt";
  Signed east = sign(req, kCreds, "us-east-1", "s3", kDate);
  Signed paris = sign(req, kCreds, "eu-west-3", "s3", kDate);
  EXPECT_NE(header(paris, "authorization").find("/20130524/eu-west-3/s3/aws4_request"),
            std::string::npos);
  EXPECT_NE(east.signature, paris.signature);
}

TEST(SigV4Test, SessionTokenIsSentAndSigned) {
  Credentials creds = kCreds;
  creds.session_token = "FQoDYXdzEXAMPLE//token+with/slashes=";
  Request req;
  req.method = "HEAD";
  req.host = kHost;
  req.path = "/test.txt";
  Signed s = sign(req, creds, "us-east-1", "s3", kDate);
  EXPECT_EQ(header(s, "x-amz-security-token"), creds.session_token);
  EXPECT_NE(header(s, "authorization")
                .find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"),
            std::string::npos)
      << header(s, "authorization");
  EXPECT_NE(s.signature, sign(req, kCreds, "us-east-1", "s3", kDate).signature);
}

TEST(SigV4Test, SecretNeverAppearsInHeaders) {
  Request req;
  req.method = "GET";
  req.host = kHost;
  req.path = "/a";
  Signed s = sign(req, kCreds, "us-east-1", "s3", kDate);
  for (const auto& [name, value] : s.headers) {
    EXPECT_EQ(value.find(kCreds.secret_access_key), std::string::npos) << name;
  }
}

TEST(SigV4Test, CanonicalUriAndQueryEncoding) {
  // Unreserved characters stay; everything else is %XX in upper-case hex.
  EXPECT_EQ(uri_encode("AZaz09-_.~"), "AZaz09-_.~");
  EXPECT_EQ(uri_encode("a b+c*d%e/f"), "a%20b%2Bc%2Ad%25e%2Ff");
  EXPECT_EQ(uri_encode("a/b c", false), "a/b%20c");
  EXPECT_EQ(uri_encode("\xc3\xa9"), "%C3%A9");  // UTF-8 bytes one by one
  EXPECT_EQ(uri_encode("="), "%3D");

  Request req;
  req.method = "GET";
  req.host = "127.0.0.1:9000";
  req.path = "/bucket/dir one/é+x";
  // Same name twice sorts by value; '/' in a value is encoded; empty values keep '='.
  req.query = {{"prefix", "a/b c"}, {"list-type", "2"}, {"b", "2"}, {"b", "1"}, {"empty", ""}};
  Signed s = sign(req, kCreds, "us-east-1", "s3", kDate);
  EXPECT_EQ(s.canonical_uri, "/bucket/dir%20one/%C3%A9%2Bx");
  EXPECT_EQ(s.canonical_query, "b=1&b=2&empty=&list-type=2&prefix=a%2Fb%20c");
  // Header values are trimmed and inner blanks collapsed; the port stays in host.
  req.query.clear();
  req.headers = {{"X-Custom", "  a   b  "}};
  s = sign(req, kCreds, "us-east-1", "s3", kDate);
  EXPECT_NE(s.canonical_request.find("\nhost:127.0.0.1:9000\n"), std::string::npos);
  EXPECT_NE(s.canonical_request.find("\nx-custom:a b\n"), std::string::npos);
  // An empty path is "/".
  req.path = "";
  EXPECT_EQ(sign(req, kCreds, "us-east-1", "s3", kDate).canonical_uri, "/");
}

TEST(SigV4Test, AmzDate) {
  EXPECT_EQ(amz_date(1369353600), "20130524T000000Z");
  EXPECT_EQ(amz_date(0), "19700101T000000Z");
}

}  // namespace
}  // namespace cairn::storage::sigv4
