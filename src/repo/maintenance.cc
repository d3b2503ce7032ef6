#include "repo/maintenance.h"

#include <cstring>
#include <nlohmann/json.hpp>

namespace cairn::repo {

using storage::FileType;

namespace {

constexpr uint8_t kMarkerMagic[4] = {'C', 'M', 'R', 'K'};
// A marker can vanish while listed (superseded or swept); a few fresh
// listings always converge because prune writes a successor before removing.
constexpr int kListAttempts = 20;

std::optional<MarkerState> parse_state(const std::string& s) {
  if (s == "pending") return MarkerState::kPending;
  if (s == "marked") return MarkerState::kMarked;
  if (s == "sweeping") return MarkerState::kSweeping;
  return std::nullopt;
}

void put_blob(core::Bytes& out, const core::Bytes& part) {
  core::put_u32le(out, static_cast<uint32_t>(part.size()));
  out.insert(out.end(), part.begin(), part.end());
}

}  // namespace

const char* marker_state_name(MarkerState s) {
  switch (s) {
    case MarkerState::kPending: return "pending";
    case MarkerState::kMarked: return "marked";
    case MarkerState::kSweeping: return "sweeping";
  }
  return "?";
}

std::vector<Id> Marker::pack_ids() const {
  std::vector<Id> out;
  for (const auto& pc : packs) out.push_back(pc.pack);
  return out;
}

core::Bytes encode_marker(const Marker& m) {
  nlohmann::json j = {{"version", 1},
                      {"state", marker_state_name(m.state)},
                      {"time", format_time(m.time)},
                      {"obsolete_index", m.obsolete_index},
                      {"waits_for", m.waits_for},
                      {"supersedes", m.supersedes}};
  core::Bytes out(kMarkerMagic, kMarkerMagic + 4);
  out.push_back(1);  // version
  std::string meta = j.dump();
  put_blob(out, core::Bytes(meta.begin(), meta.end()));
  put_blob(out, encode_index(m.packs));
  put_blob(out, encode_index(m.rescued));
  return out;
}

core::Result<Marker> decode_marker(core::ByteView plain) {
  if (plain.size() < 5 || std::memcmp(plain.data(), kMarkerMagic, 4) != 0)
    return core::corruption("marker: bad magic");
  if (plain[4] != 1) return core::unsupported("marker version " + std::to_string(plain[4]));
  size_t pos = 5;
  auto next = [&]() -> core::Result<core::ByteView> {
    if (pos + 4 > plain.size()) return core::corruption("marker: truncated");
    uint32_t n = core::get_u32le(plain.data() + pos);
    pos += 4;
    if (pos + n > plain.size()) return core::corruption("marker: truncated");
    core::ByteView v(plain.data() + pos, n);
    pos += n;
    return v;
  };
  ASSIGN_OR_RETURN(core::ByteView meta, next());
  ASSIGN_OR_RETURN(core::ByteView packs, next());
  ASSIGN_OR_RETURN(core::ByteView rescued, next());
  if (pos != plain.size()) return core::corruption("marker: trailing bytes");
  auto j = nlohmann::json::parse(meta.begin(), meta.end(), nullptr, false);
  if (!j.is_object()) return core::corruption("marker: metadata is not a JSON object");
  Marker m;
  auto state = parse_state(j.value("state", ""));
  auto time = parse_time(j.value("time", ""));
  if (!state || !time) return core::corruption("marker: bad state or time");
  m.state = *state;
  m.time = *time;
  try {
    m.obsolete_index = j.value("obsolete_index", std::vector<std::string>{});
    m.waits_for = j.value("waits_for", std::vector<std::string>{});
    m.supersedes = j.value("supersedes", "");
  } catch (const nlohmann::json::exception& e) {
    return core::corruption(std::string("marker: ") + e.what());
  }
  ASSIGN_OR_RETURN(m.packs, decode_index(packs));
  ASSIGN_OR_RETURN(m.rescued, decode_index(rescued));
  return m;
}

core::Result<std::vector<Marker>> list_markers(Repository& repo) {
  for (int attempt = 0; attempt < kListAttempts; ++attempt) {
    std::vector<std::string> names;
    TRY(repo.backend().list(FileType::kMaintenance,
                            [&](const storage::FileInfo& fi) { names.push_back(fi.name); }));
    std::vector<Marker> out;
    bool vanished = false;
    for (const auto& name : names) {
      auto plain = repo.load_file(FileType::kMaintenance, name);
      if (!plain.ok() && plain.status().code() == core::Code::kNotFound) {
        vanished = true;
        break;
      }
      if (!plain.ok())
        return plain.status().with_context("maintenance marker unreadable (prune cannot know which packs "
                                           "are about to be deleted)");
      auto m = decode_marker(*plain);
      if (!m.ok()) return m.status().with_context("maintenance/" + name);
      m->id = name;
      out.push_back(std::move(*m));
    }
    if (!vanished) return out;
  }
  return core::Status(core::Code::kTransient, "maintenance markers kept changing while being read; try again");
}

core::Result<std::string> save_marker(Repository& repo, Marker& m) {
  ASSIGN_OR_RETURN(m.id, repo.save_file(FileType::kMaintenance, encode_marker(m)));
  return m.id;
}

}  // namespace cairn::repo
