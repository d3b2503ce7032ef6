// storage::resolve_aws_credentials and parse_ini: environment first, then a
// profile of the shared credentials file; clear errors naming file and
// profile; never a secret in a message.
#include "storage/aws_credentials.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace cairn::storage {
namespace {

// A fake environment: tests never touch the process's own.
struct FakeEnv {
  std::map<std::string, std::string> vars;
  EnvLookup lookup() const {
    return [this](const char* name) {
      auto it = vars.find(name);
      return it == vars.end() ? std::string() : it->second;
    };
  }
};

class AwsCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cairn-creds-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/home/.aws");
    env_.vars["HOME"] = dir_ + "/home";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  std::string default_file() const { return dir_ + "/home/.aws/credentials"; }

  std::string dir_;
  FakeEnv env_;
};

const char* kFile =
    "# comment\n"
    "[default]\n"
    "aws_access_key_id = AKIDDEFAULT\n"
    "aws_secret_access_key=secret-default\r\n"
    "\n"
    "; other comment\n"
    "[ci]\n"
    "AWS_Access_Key_Id =  AKIDCI  \n"
    "aws_secret_access_key = secret-ci\n"
    "aws_session_token = token-ci\n"
    "s3 =\n"
    "  max_concurrent_requests = 4\n"
    "[empty]\n";

TEST_F(AwsCredentialsTest, EnvironmentWins) {
  write(default_file(), kFile);
  env_.vars["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  env_.vars["AWS_SECRET_ACCESS_KEY"] = "secret-env";
  env_.vars["AWS_SESSION_TOKEN"] = "token-env";
  auto c = resolve_aws_credentials(env_.lookup());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->access_key_id, "AKIDENV");
  EXPECT_EQ(c->secret_access_key, "secret-env");
  EXPECT_EQ(c->session_token, "token-env");
  EXPECT_EQ(c->source, "environment");
}

TEST_F(AwsCredentialsTest, HalfAPairInTheEnvironmentIsAnError) {
  write(default_file(), kFile);
  env_.vars["AWS_SECRET_ACCESS_KEY"] = "secret-env";
  auto c = resolve_aws_credentials(env_.lookup());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), core::Code::kPermissionDenied);
  EXPECT_NE(c.status().message().find("AWS_ACCESS_KEY_ID is not"), std::string::npos)
      << c.status().message();
  EXPECT_EQ(c.status().message().find("secret-env"), std::string::npos);
}

TEST_F(AwsCredentialsTest, DefaultProfileOfTheDefaultFile) {
  write(default_file(), kFile);
  auto c = resolve_aws_credentials(env_.lookup());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(c->secret_access_key, "secret-default");  // the \r is gone
  EXPECT_EQ(c->session_token, "");
  EXPECT_EQ(c->source, default_file() + " [default]");
}

TEST_F(AwsCredentialsTest, ProfileAndFileFromTheEnvironment) {
  const std::string other = dir_ + "/other-credentials";
  write(other, kFile);
  env_.vars["AWS_SHARED_CREDENTIALS_FILE"] = other;
  env_.vars["AWS_PROFILE"] = "ci";
  auto c = resolve_aws_credentials(env_.lookup());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->access_key_id, "AKIDCI");
  EXPECT_EQ(c->secret_access_key, "secret-ci");
  EXPECT_EQ(c->session_token, "token-ci");
}

TEST_F(AwsCredentialsTest, MissingProfileNamesFileAndProfile) {
  write(default_file(), kFile);
  env_.vars["AWS_PROFILE"] = "prod";
  auto c = resolve_aws_credentials(env_.lookup());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), core::Code::kPermissionDenied);
  EXPECT_NE(c.status().message().find(default_file()), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("[prod]"), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
}

TEST_F(AwsCredentialsTest, ProfileWithoutKeysIsNamed) {
  write(default_file(), kFile);
  env_.vars["AWS_PROFILE"] = "empty";
  auto c = resolve_aws_credentials(env_.lookup());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("profile [empty]"), std::string::npos)
      << c.status().message();
  EXPECT_NE(c.status().message().find("aws_access_key_id"), std::string::npos);
}

TEST_F(AwsCredentialsTest, MissingFilesAreNamed) {
  auto c = resolve_aws_credentials(env_.lookup());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(default_file() + " does not exist"), std::string::npos)
      << c.status().message();
  env_.vars["AWS_SHARED_CREDENTIALS_FILE"] = dir_ + "/nope";
  c = resolve_aws_credentials(env_.lookup());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(dir_ + "/nope"), std::string::npos) << c.status().message();
}

TEST_F(AwsCredentialsTest, MalformedFileIsReportedWithLineButNoSecret) {
  write(default_file(), "[default]\naws_secret_access_key = hidden-value\nnot a setting\n");
  auto c = resolve_aws_credentials(env_.lookup());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(default_file() + ":3"), std::string::npos)
      << c.status().message();
  EXPECT_EQ(c.status().message().find("hidden-value"), std::string::npos);
}

TEST(IniTest, ParsesSectionsAndRejectsGarbage) {
  auto ini = parse_ini("[a]\nk = v = w\n[ b ]\nx=1\n", "f");
  ASSERT_TRUE(ini.ok()) << ini.status().to_string();
  EXPECT_EQ((*ini)["a"]["k"], "v = w");
  EXPECT_EQ((*ini)["b"]["x"], "1");
  EXPECT_FALSE(parse_ini("k = v\n", "f").ok());  // outside a section
  EXPECT_FALSE(parse_ini("[a\n", "f").ok());
  EXPECT_TRUE(parse_ini("", "f").ok());
}

}  // namespace
}  // namespace cairn::storage
