#include "repo/snapshot.h"

#include <algorithm>

namespace cairn::repo {

using json = nlohmann::json;

namespace {

// A list of file system names under `key`; when one of them is not UTF-8
// (not a JSON string), every element goes base64-encoded under "<key>_b64",
// as tree nodes do.
void put_names(json& j, const char* key, const std::vector<std::string>& names) {
  if (std::all_of(names.begin(), names.end(), [](const std::string& n) { return core::is_valid_utf8(n); })) {
    j[key] = names;
    return;
  }
  json out = json::array();
  for (const auto& n : names) out.push_back(core::base64_encode(core::as_bytes(n)));
  j[std::string(key) + "_b64"] = std::move(out);
}

core::Result<std::vector<std::string>> get_names(const json& j, const char* key) {
  std::string b64_key = std::string(key) + "_b64";
  if (!j.contains(b64_key)) return j.value(key, std::vector<std::string>{});
  std::vector<std::string> out;
  for (const auto& e : j.at(b64_key)) {
    auto raw = core::base64_decode(e.get<std::string>());
    if (!raw) return core::corruption(std::string("snapshot ") + b64_key + " is malformed");
    out.emplace_back(raw->begin(), raw->end());
  }
  return out;
}

}  // namespace

json Snapshot::to_json() const {
  json j = {{"version", 1},
            {"time", format_time(time)},
            {"hostname", hostname},
            {"username", username},
            {"uid", uid},
            {"gid", gid},
            {"tree", tree.hex()},
            {"tags", tags},
            {"program_version", program_version}};
  put_names(j, "paths", paths);
  if (!service.empty()) j["service"] = service;
  if (!excludes.empty()) put_names(j, "excludes", excludes);
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
    ASSIGN_OR_RETURN(s.paths, get_names(j, "paths"));
    s.tags = j.value("tags", std::vector<std::string>{});
    ASSIGN_OR_RETURN(s.excludes, get_names(j, "excludes"));
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
