#include "repo/config.h"

#include <nlohmann/json.hpp>

#include "crypto/crypto.h"

namespace cairn::repo {

using json = nlohmann::json;

Config Config::generate() {
  Config c;
  c.id = core::hex_encode(crypto::random_bytes(32));
  c.gear_seed = crypto::random_bytes(32);
  return c;
}

std::string Config::to_json() const {
  json j = {{"version", version},
            {"id", id},
            {"chunker",
             {{"algorithm", "fastcdc"},
              {"min_size", chunker.min_size},
              {"avg_size", chunker.avg_size},
              {"max_size", chunker.max_size},
              {"gear_seed", core::base64_encode(gear_seed)}}}};
  return j.dump(2);
}

core::Result<Config> Config::from_json(core::ByteView text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded()) return core::corruption("config is not valid JSON");
  try {
    Config c;
    c.version = j.at("version").get<int>();
    if (c.version != kFormatVersion)
      return core::unsupported("repository format version " + std::to_string(c.version) +
                               " is not supported (this cairn reads version 1)");
    c.id = j.at("id").get<std::string>();
    const json& ch = j.at("chunker");
    if (ch.at("algorithm").get<std::string>() != "fastcdc")
      return core::unsupported("chunker " + ch.at("algorithm").dump() + " is not supported");
    c.chunker.min_size = ch.at("min_size").get<uint32_t>();
    c.chunker.avg_size = ch.at("avg_size").get<uint32_t>();
    c.chunker.max_size = ch.at("max_size").get<uint32_t>();
    auto seed = core::base64_decode(ch.at("gear_seed").get<std::string>());
    if (!seed || seed->size() != 32) return core::corruption("config gear_seed is malformed");
    c.gear_seed = std::move(*seed);
    const auto& p = c.chunker;
    bool pow2 = p.avg_size && (p.avg_size & (p.avg_size - 1)) == 0;
    if (!pow2 || p.min_size == 0 || p.min_size > p.avg_size || p.avg_size > p.max_size ||
        p.max_size > (64u << 20))
      return core::corruption("config chunker sizes are invalid");
    return c;
  } catch (const json::exception& e) {
    return core::corruption(std::string("config: ") + e.what());
  }
}

}  // namespace cairn::repo
