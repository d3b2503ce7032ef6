// cairn cat: prints repository objects (config, key, snapshot, index, pack
// header, tree, blob) for debugging and for second implementations.
#include <iostream>

#include "cli/context.h"
#include "core/file.h"
#include "repo/file_codec.h"
#include "repo/index.h"
#include "repo/pack.h"

namespace cairn::cli {

namespace {

nlohmann::json entries_json(const std::vector<repo::PackEntry>& entries) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& e : entries)
    arr.push_back({{"id", e.id.hex()}, {"type", repo::blob_type_name(e.type)}, {"offset", e.offset},
                   {"length", e.length}, {"raw_length", e.raw_length}, {"compressed", e.compressed()}});
  return arr;
}

core::Status run_cat(Context& ctx, const std::string& what, const std::string& id) {
  ASSIGN_OR_RETURN(auto repo, ctx.open_repository(what == "blob" || what == "tree"));
  using storage::FileType;
  if (what == "config") {
    std::cout << repo->config().to_json() << "\n";
    return {};
  }
  if (id.empty()) return core::invalid_argument("cat " + what + " needs an id");
  auto expand = [&](FileType t) -> core::Result<std::string> {
    if (id.size() == 64) return id;
    std::vector<std::string> hits;
    TRY(repo->backend().list(t, [&](const storage::FileInfo& fi) {
      if (fi.name.compare(0, id.size(), id) == 0) hits.push_back(fi.name);
    }));
    if (hits.size() != 1) return core::not_found(what + " " + id + (hits.empty() ? " not found" : " is ambiguous"));
    return hits[0];
  };
  if (what == "key") {
    ASSIGN_OR_RETURN(std::string name, expand(FileType::kKey));
    ASSIGN_OR_RETURN(auto bytes, repo->backend().load({FileType::kKey, name}));
    std::cout << core::as_chars(bytes);
    return {};
  }
  if (what == "snapshot") {
    ASSIGN_OR_RETURN(auto s, repo->find_snapshot(id));
    std::cout << snapshot_json(s).dump(2) << "\n";
    return {};
  }
  if (what == "index") {
    ASSIGN_OR_RETURN(std::string name, expand(FileType::kIndex));
    ASSIGN_OR_RETURN(auto plain, repo->load_file(FileType::kIndex, name));
    ASSIGN_OR_RETURN(auto packs, repo::decode_index(plain));
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& p : packs) arr.push_back({{"id", p.pack.hex()}, {"blobs", entries_json(p.blobs)}});
    std::cout << nlohmann::json{{"packs", arr}}.dump(2) << "\n";
    return {};
  }
  if (what == "pack") {
    ASSIGN_OR_RETURN(std::string name, expand(FileType::kPack));
    ASSIGN_OR_RETURN(auto info, repo->backend().stat({FileType::kPack, name}));
    ASSIGN_OR_RETURN(auto bytes, repo->backend().load({FileType::kPack, name}));
    ASSIGN_OR_RETURN(auto hdr, repo->decode_pack_header(bytes, info.size));
    std::cout << nlohmann::json{{"id", name}, {"size", info.size}, {"blobs", entries_json(hdr.entries)}}.dump(2)
              << "\n";
    return {};
  }
  if (what == "blob" || what == "tree") {
    auto bid = repo::Id::from_hex(id);
    if (!bid) return core::invalid_argument("blob ids are 64 hex characters");
    ASSIGN_OR_RETURN(auto plain, repo->load_blob(*bid));
    if (what == "tree") {
      ASSIGN_OR_RETURN(auto tree, repo::decode_tree(plain));
      (void)tree;
      std::cout << nlohmann::json::parse(plain.begin(), plain.end()).dump(2) << "\n";
      return {};
    }
    return core::write_all(1, plain, "stdout");
  }
  return core::invalid_argument("cat: unknown object type '" + what +
                                "' (config, key, snapshot, index, pack, tree, blob)");
}

}  // namespace

void add_cat(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("cat", "print a repository object");
  auto what = std::make_shared<std::string>();
  auto id = std::make_shared<std::string>();
  cmd->add_option("type", *what, "config, key, snapshot, index, pack, tree or blob")->required();
  cmd->add_option("id", *id, "object id (or unique prefix; 'latest' for snapshots)");
  cmd->callback([&ctx, what, id] { ctx.run([&] { return run_cat(ctx, *what, *id); }); });
}

}  // namespace cairn::cli
