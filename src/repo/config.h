// The repository config: id, format version and chunker parameters. Stored
// encrypted as the object "config"; read once when a repository is opened.
#pragma once

#include <string>

#include "core/bytes.h"
#include "core/status.h"
#include "repo/chunker.h"

namespace cairn::repo {

constexpr int kFormatVersion = 1;

struct Config {
  int version = kFormatVersion;
  std::string id;          // 64 hex chars, random
  ChunkerParams chunker;
  core::Bytes gear_seed;   // 32 bytes, random per repository

  static Config generate();
  std::string to_json() const;
  static core::Result<Config> from_json(core::ByteView text);
};

}  // namespace cairn::repo
