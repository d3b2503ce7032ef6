#include <gtest/gtest.h>

#include "core/bytes.h"
#include "core/status.h"
#include "crypto/crypto.h"

namespace cairn {
namespace {

TEST(Bytes, HexRoundTrip) {
  core::Bytes b = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(core::hex_encode(b), "0001abff");
  EXPECT_EQ(*core::hex_decode("0001ABff"), b);
  EXPECT_FALSE(core::hex_decode("abc").has_value());
  EXPECT_FALSE(core::hex_decode("zz").has_value());
}

TEST(Bytes, Base64RoundTripAllLengths) {
  for (size_t n = 0; n < 20; ++n) {
    core::Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 37 + 5);
    auto enc = core::base64_encode(b);
    auto dec = core::base64_decode(enc);
    ASSERT_TRUE(dec.has_value()) << enc;
    EXPECT_EQ(*dec, b);
  }
  EXPECT_EQ(core::base64_encode(core::as_bytes("foobar")), "Zm9vYmFy");
  EXPECT_FALSE(core::base64_decode("Zm9").has_value());
  EXPECT_FALSE(core::base64_decode("Z=9v").has_value());
}

TEST(Bytes, Utf8Validation) {
  EXPECT_TRUE(core::is_valid_utf8("plain ascii"));
  EXPECT_TRUE(core::is_valid_utf8("caf\xc3\xa9"));
  EXPECT_FALSE(core::is_valid_utf8("\xff\xfe"));
  EXPECT_FALSE(core::is_valid_utf8("\xc3"));          // truncated sequence
  EXPECT_FALSE(core::is_valid_utf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(core::is_valid_utf8("\xed\xa0\x80"));  // surrogate
}

TEST(Bytes, AllZero) {
  core::Bytes z(1000, 0);
  EXPECT_TRUE(core::is_all_zero(z));
  z[999] = 1;
  EXPECT_FALSE(core::is_all_zero(z));
}

core::Result<int> half(int x) {
  if (x % 2) return core::invalid_argument("odd");
  return x / 2;
}
core::Status quarter(int x, int& out) {
  ASSIGN_OR_RETURN(int h, half(x));
  ASSIGN_OR_RETURN(out, half(h));
  return {};
}

TEST(Status, Macros) {
  int out = 0;
  EXPECT_TRUE(quarter(8, out).ok());
  EXPECT_EQ(out, 2);
  auto st = quarter(6, out);
  EXPECT_EQ(st.code(), core::Code::kInvalidArgument);
  EXPECT_EQ(st.with_context("ctx").message(), "ctx: odd");
}

class CryptoTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(crypto::init().ok()); }
};

TEST_F(CryptoTest, Sha256KnownAnswer) {
  EXPECT_EQ(core::hex_encode(crypto::sha256(core::as_bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  crypto::Sha256 inc;
  inc.update(core::as_bytes("a"));
  inc.update(core::as_bytes("bc"));
  EXPECT_EQ(inc.finish(), crypto::sha256(core::as_bytes("abc")));
}

TEST_F(CryptoTest, HmacDependsOnKey) {
  crypto::Key k1{}, k2{};
  k2[0] = 1;
  auto a = crypto::hmac_sha256(k1, core::as_bytes("data"));
  auto b = crypto::hmac_sha256(k2, core::as_bytes("data"));
  EXPECT_NE(a, b);
  // RFC 4231 style check with a 32-byte key of 0x0b (HMAC-SHA-256 of "Hi There").
  crypto::Key k;
  k.fill(0x0b);
  EXPECT_EQ(core::hex_encode(crypto::hmac_sha256(k, core::as_bytes("Hi There"))).size(), 64u);
}

TEST_F(CryptoTest, SealOpenRoundTripAndTamper) {
  auto key = crypto::random_key();
  core::Bytes msg = core::to_bytes("attack at dawn");
  auto sealed = crypto::seal(key, msg);
  EXPECT_EQ(sealed.size(), msg.size() + crypto::kAeadOverhead);
  auto opened = crypto::open(key, sealed);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, msg);
  // Nonces are random: sealing twice differs.
  EXPECT_NE(crypto::seal(key, msg), sealed);
  for (size_t i = 0; i < sealed.size(); ++i) {
    auto bad = sealed;
    bad[i] ^= 0x40;
    EXPECT_EQ(crypto::open(key, bad).status().code(), core::Code::kCorruption) << "byte " << i;
  }
  EXPECT_EQ(crypto::open(crypto::random_key(), sealed).status().code(), core::Code::kCorruption);
  EXPECT_EQ(crypto::open(key, core::ByteView(sealed.data(), 10)).status().code(), core::Code::kCorruption);
  auto empty = crypto::seal(key, {});
  EXPECT_TRUE(crypto::open(key, empty).ok());
}

TEST_F(CryptoTest, KdfIsDeterministicPerSalt) {
  core::Bytes salt(16, 7), salt2(16, 8);
  crypto::KdfParams p{1, 8u << 20};
  auto a = crypto::derive_key("pw", salt, p);
  auto b = crypto::derive_key("pw", salt, p);
  auto c = crypto::derive_key("pw", salt2, p);
  auto d = crypto::derive_key("pw2", salt, p);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_NE(*a, *d);
  EXPECT_FALSE(crypto::derive_key("pw", core::Bytes(3), p).ok());
}

// No timing thresholds: only that a longer target never picks fewer passes,
// that the memory is kept, and that the pass count stays within its bounds.
TEST_F(CryptoTest, KdfCalibrationGrowsWithTheTargetWithinBounds) {
  auto quick = crypto::calibrate_kdf(0.001, 8u << 20);
  auto slow = crypto::calibrate_kdf(5.0, 8u << 20);
  EXPECT_EQ(quick.mem, 8u << 20);
  EXPECT_EQ(quick.ops, 1u);  // below one pass: the minimum
  EXPECT_GE(slow.ops, quick.ops);
  EXPECT_LE(slow.ops, 64u);
}

}  // namespace
}  // namespace cairn
