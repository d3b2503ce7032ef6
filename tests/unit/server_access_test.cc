// The role matrix and service scope of the server (docs/security.md).
#include <gtest/gtest.h>

#include "server/access.h"

namespace cairn::server {
namespace {

TEST(ServerAccess, RoleMatrix) {
  // The table in docs/security.md, row by row.
  struct Row {
    Role role;
    bool read, trigger, restore, admin, append, repo_read;
  };
  for (const Row& r : {Row{Role::kViewer, true, false, false, false, false, false},
                       Row{Role::kOperator, true, true, false, false, false, false},
                       Row{Role::kRestorer, true, true, true, false, false, false},
                       Row{Role::kAdmin, true, true, true, true, true, true},
                       Row{Role::kAgent, false, false, false, false, true, false}}) {
    SCOPED_TRACE(role_name(r.role));
    EXPECT_EQ(role_allows(r.role, Permission::kRead), r.read);
    EXPECT_EQ(role_allows(r.role, Permission::kTrigger), r.trigger);
    EXPECT_EQ(role_allows(r.role, Permission::kRestore), r.restore);
    EXPECT_EQ(role_allows(r.role, Permission::kAdmin), r.admin);
    EXPECT_EQ(role_allows(r.role, Permission::kRepoAppend), r.append);
    EXPECT_EQ(role_allows(r.role, Permission::kRepoRead), r.repo_read);
  }
}

TEST(ServerAccess, RoleNamesRoundTrip) {
  for (Role r : {Role::kViewer, Role::kOperator, Role::kRestorer, Role::kAdmin, Role::kAgent})
    EXPECT_EQ(parse_role(role_name(r)), r);
  EXPECT_FALSE(parse_role("Admin").has_value());
  EXPECT_FALSE(parse_role("root").has_value());
  EXPECT_FALSE(parse_role("").has_value());
}

TEST(ServerAccess, ServiceScope) {
  Principal p{"alice", "id", Role::kRestorer, {"shop", "cart"}};
  EXPECT_TRUE(p.sees_service("shop"));
  EXPECT_TRUE(p.sees_service("cart"));
  EXPECT_FALSE(p.sees_service("blog"));
  EXPECT_FALSE(p.sees_service("shop2"));
  EXPECT_FALSE(p.sees_service(""));
  EXPECT_FALSE(p.sees_every_service());
  Principal all{"root", "id", Role::kAdmin, {"*"}};
  EXPECT_TRUE(all.sees_service("anything"));
  EXPECT_TRUE(all.sees_every_service());
}

}  // namespace
}  // namespace cairn::server
