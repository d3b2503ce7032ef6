#include "repo/snapshot.h"

namespace cairn::repo {

using json = nlohmann::json;

json Snapshot::to_json() const {
  json j = {{"version", 1},
            {"time", format_time(time)},
            {"hostname", hostname},
            {"username", username},
            {"uid", uid},
            {"gid", gid},
            {"tree", tree.hex()},
            {"paths", paths},
            {"tags", tags},
            {"program_version", program_version}};
  if (!service.empty()) j["service"] = service;
  if (!excludes.empty()) j["excludes"] = excludes;
  if (parent) j["parent"] = parent->hex();
  if (!original.empty()) j["original"] = original;
  if (!engine.empty()) j["engine"] = engine;
  j["summary"] = {{"files_new", summary.files_new},
                  {"files_changed", summary.files_changed},
                  {"files_unmodified", summary.files_unmodified},
                  {"dirs", summary.dirs},
                  {"errors", summary.errors},
                  {"data_blobs", summary.data_blobs},
                  {"tree_blobs", summary.tree_blobs},
                  {"data_added", summary.data_added},
                  {"data_added_raw", summary.data_added_raw},
                  {"total_files", summary.total_files},
                  {"total_bytes", summary.total_bytes},
                  {"duration_s", summary.duration_s}};
  return j;
}

core::Result<Snapshot> Snapshot::from_json(core::ByteView text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return core::corruption("snapshot is not valid JSON");
  try {
    Snapshot s;
    if (j.value("version", 1) != 1) return core::unsupported("snapshot version " + j["version"].dump());
    auto t = parse_time(j.at("time").get<std::string>());
    if (!t) return core::corruption("snapshot time is malformed");
    s.time = *t;
    s.hostname = j.value("hostname", "");
    s.username = j.value("username", "");
    s.uid = j.value("uid", 0u);
    s.gid = j.value("gid", 0u);
    s.service = j.value("service", "");
    s.paths = j.value("paths", std::vector<std::string>{});
    s.tags = j.value("tags", std::vector<std::string>{});
    s.excludes = j.value("excludes", std::vector<std::string>{});
    s.program_version = j.value("program_version", "");
    auto tree = Id::from_hex(j.at("tree").get<std::string>());
    if (!tree) return core::corruption("snapshot tree id is malformed");
    s.tree = *tree;
    if (j.contains("parent")) {
      auto p = Id::from_hex(j["parent"].get<std::string>());
      if (!p) return core::corruption("snapshot parent id is malformed");
      s.parent = *p;
    }
    if (j.contains("engine")) s.engine = j["engine"];
    s.original = j.value("original", "");
    if (j.contains("summary")) {
      const json& m = j["summary"];
      auto& u = s.summary;
      u.files_new = m.value("files_new", uint64_t{0});
      u.files_changed = m.value("files_changed", uint64_t{0});
      u.files_unmodified = m.value("files_unmodified", uint64_t{0});
      u.dirs = m.value("dirs", uint64_t{0});
      u.errors = m.value("errors", uint64_t{0});
      u.data_blobs = m.value("data_blobs", uint64_t{0});
      u.tree_blobs = m.value("tree_blobs", uint64_t{0});
      u.data_added = m.value("data_added", uint64_t{0});
      u.data_added_raw = m.value("data_added_raw", uint64_t{0});
      u.total_files = m.value("total_files", uint64_t{0});
      u.total_bytes = m.value("total_bytes", uint64_t{0});
      u.duration_s = m.value("duration_s", 0.0);
    }
    return s;
  } catch (const json::exception& e) {
    return core::corruption(std::string("snapshot: ") + e.what());
  }
}

}  // namespace cairn::repo
