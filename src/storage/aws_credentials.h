// S3 credentials the way the AWS tools find them, minus what cairn does not
// need (SSO, instance metadata, credential_process): first the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), then a
// profile (AWS_PROFILE, default "default") of the shared credentials file
// (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials).
//
// Pure functions of their inputs (the environment is passed in), so tests
// need not touch the process environment. Errors name the variables, the
// file and the profile, never a secret.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "core/status.h"

namespace cairn::storage {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // "" = none
  // Where they came from, for messages: "environment" or "FILE [profile]".
  std::string source;
};

// Value of an environment variable, "" when unset.
using EnvLookup = std::function<std::string(const char* name)>;
// std::getenv.
std::string process_env(const char* name);

// Sections of an INI file: section name -> (lower-case key -> value). Keys
// and values are trimmed; '#' and ';' start comment lines; indented lines
// (the AWS CLI's nested settings) are skipped. `file` names it in errors.
using IniSections = std::map<std::string, std::map<std::string, std::string>>;
core::Result<IniSections> parse_ini(std::string_view text, const std::string& file);

// Environment first, then the shared credentials file. kPermissionDenied
// when neither has credentials, with what was looked at.
core::Result<AwsCredentials> resolve_aws_credentials(const EnvLookup& env = process_env);

}  // namespace cairn::storage
