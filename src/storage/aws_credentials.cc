#include "storage/aws_credentials.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace cairn::storage {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

core::Status no_credentials(const std::string& why) {
  return core::Status(core::Code::kPermissionDenied,
                      "no S3 credentials: " + why +
                          " (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put them in a "
                          "profile of ~/.aws/credentials; see docs/storage.md)");
}

}  // namespace

std::string process_env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

core::Result<IniSections> parse_ini(std::string_view text, const std::string& file) {
  IniSections out;
  std::string section;
  bool in_section = false;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    // Indented lines continue a nested setting ("s3 =\n  max_concurrent_requests = 4").
    const bool indented = !raw.empty() && (raw.front() == ' ' || raw.front() == '\t');
    std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') {
        return core::invalid_argument(file + ":" + std::to_string(line_no) +
                                      ": section header without ']'");
      }
      section = std::string(trim(line.substr(1, line.size() - 2)));
      in_section = true;
      out[section];  // an empty profile still exists
      continue;
    }
    if (indented) continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return core::invalid_argument(file + ":" + std::to_string(line_no) +
                                    ": expected 'key = value' or '[section]'");
    }
    if (!in_section) {
      return core::invalid_argument(file + ":" + std::to_string(line_no) +
                                    ": setting outside of a [section]");
    }
    out[section][lower(trim(line.substr(0, eq)))] = std::string(trim(line.substr(eq + 1)));
  }
  return out;
}

core::Result<AwsCredentials> resolve_aws_credentials(const EnvLookup& env) {
  AwsCredentials c;
  c.access_key_id = env("AWS_ACCESS_KEY_ID");
  c.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
  if (!c.access_key_id.empty() || !c.secret_access_key.empty()) {
    // Half a pair in the environment is a mistake, not a reason to look elsewhere.
    if (c.access_key_id.empty()) {
      return no_credentials("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
    }
    if (c.secret_access_key.empty()) {
      return no_credentials("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    }
    c.session_token = env("AWS_SESSION_TOKEN");
    c.source = "environment";
    return c;
  }

  std::string file = env("AWS_SHARED_CREDENTIALS_FILE");
  const bool explicit_file = !file.empty();
  if (!explicit_file) {
    const std::string home = env("HOME");
    if (home.empty()) {
      return no_credentials(
          "AWS_ACCESS_KEY_ID is not set and HOME is unset (no ~/.aws/credentials)");
    }
    file = home + "/.aws/credentials";
  }
  std::string profile = env("AWS_PROFILE");
  if (profile.empty()) profile = "default";

  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    if (err == ENOENT && !explicit_file) {
      return no_credentials("AWS_ACCESS_KEY_ID is not set and " + file + " does not exist");
    }
    return no_credentials("cannot read credentials file " + file + ": " + std::strerror(err));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto sections = parse_ini(ss.str(), file);
  if (!sections.ok()) return no_credentials(sections.status().message());
  auto it = sections->find(profile);
  if (it == sections->end()) {
    return no_credentials("AWS_ACCESS_KEY_ID is not set and " + file + " has no profile [" +
                          profile + "]" +
                          (env("AWS_PROFILE").empty() ? " (set AWS_PROFILE?)" : ""));
  }
  const auto& kv = it->second;
  auto get = [&](const char* key) {
    auto f = kv.find(key);
    return f == kv.end() ? std::string() : f->second;
  };
  c.access_key_id = get("aws_access_key_id");
  c.secret_access_key = get("aws_secret_access_key");
  c.session_token = get("aws_session_token");
  if (c.session_token.empty()) c.session_token = get("aws_security_token");  // older tools
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return no_credentials(
        "profile [" + profile + "] in " + file + " lacks " +
        (c.access_key_id.empty() ? "aws_access_key_id" : "aws_secret_access_key"));
  }
  c.source = file + " [" + profile + "]";
  return c;
}

}  // namespace cairn::storage
