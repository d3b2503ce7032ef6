#include "storage/backend.h"

#include <cctype>
#include <filesystem>
#include <system_error>

#include "storage/local_backend.h"
#include "storage/rest/rest_backend.h"
#include "storage/s3_backend.h"

namespace cairn::storage {

const char* type_dir(FileType t) {
  switch (t) {
    case FileType::kConfig:
      return "";
    case FileType::kKey:
      return "keys";
    case FileType::kPack:
      return "data";
    case FileType::kIndex:
      return "index";
    case FileType::kSnapshot:
      return "snapshots";
    case FileType::kLock:
      return "locks";
    case FileType::kWal:
      return "wal";
    case FileType::kMaintenance:
      return "maintenance";
  }
  return "";
}

std::string Handle::to_string() const {
  if (type == FileType::kConfig) return "config";
  std::string dir = type_dir(type);
  // Packs are fanned out over 256 subfolders so no folder grows huge.
  if (type == FileType::kPack) return dir + "/" + name.substr(0, 2) + "/" + name;
  return dir + "/" + name;
}

namespace {

// A URL-like scheme: letters first, then letters, digits, '+', '-', '.'.
bool looks_like_scheme(const std::string& s) {
  if (s.size() < 2 || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

core::Result<std::unique_ptr<Backend>> open_local(const std::string& location,
                                                  const std::string& path) {
  if (path.empty()) return core::invalid_argument("empty repository path in '" + location + "'");
  // Absolute so that a later chdir cannot move the repository under us.
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  if (ec) return core::errno_status(ec.value(), path);
  std::string root = abs.lexically_normal().string();
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return std::unique_ptr<Backend>(std::make_unique<LocalBackend>(root));
}

}  // namespace

core::Result<std::unique_ptr<Backend>> open_backend(const std::string& location,
                                                    const OpenOptions& open) {
  if (location.starts_with("local:")) return open_local(location, location.substr(6));
  if (location.starts_with("s3:")) {
    ASSIGN_OR_RETURN(S3Options options, S3Options::from_location(location));
    if (!open.ca_file.empty()) options.ca_file = open.ca_file;
    options.insecure_tls = open.insecure_tls;
    options.addressing = open.s3_addressing;
    if (open.s3_connections > 0) options.connections = open.s3_connections;
    if (open.s3_multipart_threshold > 0) options.multipart_threshold = open.s3_multipart_threshold;
    if (open.s3_part_size > 0) options.part_size = open.s3_part_size;
    TRY(options.validate());
    return std::unique_ptr<Backend>(std::make_unique<S3Backend>(std::move(options)));
  }
  // --- rest: the cairn server's repository endpoint (write-only agents) ---
  if (location.starts_with("rest:")) {
    ASSIGN_OR_RETURN(RestOptions options, RestOptions::from_location(location));
    options.ca_file = open.ca_file;
    options.insecure_tls = open.insecure_tls;
    return std::unique_ptr<Backend>(std::make_unique<RestBackend>(std::move(options)));
  }
  // --- end rest ---
  size_t colon = location.find(':');
  if (colon != std::string::npos && looks_like_scheme(location.substr(0, colon)) &&
      location.find('/') > colon) {
    return core::invalid_argument(
        "unknown backend scheme '" + location.substr(0, colon) + "' in '" + location +
        "' (use local:PATH or ./PATH for a folder whose name has a colon)");
  }
  return open_local(location, location);
}

}  // namespace cairn::storage
