// The audit log: one JSON object per line, append-only, hash-chained.
//
// Each entry records who did what to which service and how it ended:
//   {"seq":12,"time":"2026-11-26T10:31:00.123Z","principal":"alice","role":"restorer",
//    "action":"snapshot.download","service":"shop","object":"3f2a..:/etc","result":"ok",
//    "source":"10.0.0.7","prev":"<hash of entry 11>","hash":"<hash of this entry>"}
// hash = hex SHA-256 of the entry serialized without "hash" (keys sorted, as
// nlohmann::json writes them), so editing any field of a line breaks that
// line, and removing or reordering lines breaks "prev" or "seq" of the next.
// The last entry's seq and hash are also kept in "<log>.head", so removing
// lines from the end is detected too (docs/security.md says how far this goes).
//
// Several processes (the server, CLI commands) append to one file: an
// exclusive flock serializes them, and each entry is written with one
// write() and fdatasync'd before append() returns.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace cairn::server {

struct AuditEntry {
  std::string principal;  // token name, or "cli:<user>"
  std::string role;       // "" for the CLI
  std::string action;     // "service.read", "backup.trigger", "cli.restore", ...
  std::string service;    // "" when the action concerns no single service
  std::string object;     // snapshot id, path, token id, ...
  std::string result;     // "ok", "denied", "not_found", "error: ..."
  std::string source;     // client address, or "cli"
};

class AuditLog {
 public:
  explicit AuditLog(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  // Appends one entry (creating the file and its head). Fails only when the
  // entry could not be made durable.
  core::Status append(const AuditEntry& entry);

  // The newest `limit` entries (oldest first) matching `service` ("" = all).
  core::Result<std::vector<nlohmann::json>> tail(size_t limit, const std::string& service) const;

 private:
  std::string path_;
  std::mutex mu_;
};

struct AuditProblem {
  size_t line = 0;  // 1-based; 0 for the file as a whole
  std::string message;
};

struct AuditVerification {
  size_t entries = 0;
  std::vector<AuditProblem> problems;  // empty: the chain is intact
  bool ok() const { return problems.empty(); }
};

// Checks every line's hash, the chain of "prev" and "seq", and the head file.
core::Result<AuditVerification> verify_audit_log(const std::string& path);

}  // namespace cairn::server
