#include <gtest/gtest.h>

#include "server/rate_limiter.h"

namespace cairn::server {
namespace {

using std::chrono::seconds;

TEST(FailureLimiter, BlocksAfterTheLimitUntilTheWindowPasses) {
  FailureLimiter l(3, seconds(60));
  auto t0 = FailureLimiter::Clock::time_point{} + seconds(1000);
  EXPECT_EQ(l.blocked_for("a", t0), 0);
  l.record_failure("a", t0);
  l.record_failure("a", t0 + seconds(1));
  EXPECT_EQ(l.blocked_for("a", t0 + seconds(2)), 0);
  l.record_failure("a", t0 + seconds(2));
  EXPECT_EQ(l.blocked_for("a", t0 + seconds(2)), 58);  // until the first failure is a minute old
  EXPECT_EQ(l.blocked_for("b", t0 + seconds(2)), 0);   // per source
  EXPECT_EQ(l.blocked_for("a", t0 + seconds(59)), 1);
  // The first failure leaves the window: below the limit again, one more try.
  EXPECT_EQ(l.blocked_for("a", t0 + seconds(60)), 0);
  l.record_failure("a", t0 + seconds(60));
  EXPECT_EQ(l.blocked_for("a", t0 + seconds(60)), 1);
  EXPECT_EQ(l.blocked_for("a", t0 + seconds(200)), 0);
}

}  // namespace
}  // namespace cairn::server
