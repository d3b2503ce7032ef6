// Scaffolding of policy entries (`cairn service new`): a new service's
// cairn.yaml text with sensible defaults for its tier and engine, and the
// insertion of that text into an existing policy file *as text*, so the
// file's own formatting and comments stay exactly as they were (the file is
// never re-serialized). The defaults table is in docs/cli.md (`cairn service new`).
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace cairn::policy {

struct TierDefaults {
  const char* tier;
  const char* rpo;
  const char* rto;
  const char* schedule;             // engines whose recovery point is the schedule
  const char* continuous_schedule;  // base backups of PostgreSQL physical + WAL archiving
  const char* drill;                // drill schedule
  const char* retention;            // YAML flow mapping
};

// The defaults of `tier` (critical, high, medium, low), or nullptr.
const TierDefaults* tier_defaults(const std::string& tier);
const std::vector<TierDefaults>& all_tier_defaults();

// Engines `service new` knows: postgres, mariadb, redis, sqlite, files, exec.
const std::vector<std::string>& scaffold_engines();

struct ScaffoldOptions {
  std::string name;
  std::string engine;           // one of scaffold_engines()
  std::string tier = "medium";  // critical | high | medium | low
  std::string owner;            // "" = team-<name>
  std::string mode;             // postgres: physical (default) | logical
  // Set when the file names no repository the service could inherit.
  std::string repository_location, password_file;
  int indent = 2;  // one indentation step of the target file
};

// The entry, indented as a child of `services:` (its first line is
// "<indent>NAME:"), ending with a newline. kInvalidArgument for a bad name,
// engine, tier or mode.
core::Result<std::string> scaffold_service(const ScaffoldOptions& options);

// What an existing policy text already has, read without modifying it.
struct PolicyOutline {
  std::vector<std::string> services;  // names under services:
  bool has_repository = false;        // top-level repository or defaults.repository
  int indent = 2;                     // indentation of the service names (2 if unknown)
};
core::Result<PolicyOutline> outline(const std::string& text, const std::string& name_for_messages);

// `text` with `entry` inserted at the end of the top-level `services:` block
// (before any comment lines that lead into the next top-level key), or with
// a new `services:` block appended when there is none. Everything else stays
// byte for byte. kInvalidArgument when `services` is written in flow style.
core::Result<std::string> insert_service(const std::string& text, const std::string& entry);

}  // namespace cairn::policy
