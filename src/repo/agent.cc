#include "repo/agent.h"

#include <algorithm>
#include <cstring>

namespace cairn::repo {

AgentSession AgentSession::start(const crypto::BoxPublicKey& repository_key) {
  AgentSession s;
  s.data_key = crypto::random_key();
  s.sealed_key = crypto::box_seal(s.data_key, repository_key);
  return s;
}

core::Bytes AgentSession::seal_file(core::ByteView payload) const {
  core::Bytes out(kAgentFileMagic.begin(), kAgentFileMagic.end());
  out.reserve(kAgentFileOverhead + payload.size() + crypto::kAeadOverhead);
  out.insert(out.end(), sealed_key.begin(), sealed_key.end());
  crypto::seal_append(data_key, payload, out);
  return out;
}

bool looks_like_agent_file(core::ByteView stored) {
  return stored.size() >= kAgentFileOverhead + crypto::kAeadOverhead &&
         std::memcmp(stored.data(), kAgentFileMagic.data(), kAgentFileMagic.size()) == 0;
}

core::Result<crypto::Key> DataKeyOpener::open_key(core::ByteView sealed_key) {
  if (sealed_key.size() != kSealedDataKeySize)
    return core::corruption("sealed data key has the wrong length");
  std::string k(reinterpret_cast<const char*>(sealed_key.data()), sealed_key.size());
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(k);
    if (it != cache_.end()) return it->second;
  }
  if (pairs_.empty())
    return core::corruption("written by an agent, but the repository has no agent key pair");
  for (const auto& pair : pairs_) {
    auto plain = crypto::box_seal_open(sealed_key, pair);
    if (!plain.ok() || plain->size() != crypto::kKeySize) continue;
    crypto::Key key;
    std::copy(plain->begin(), plain->end(), key.begin());
    std::lock_guard lock(mu_);
    if (cache_.size() > 4096) cache_.clear();  // bounded: one entry per agent session
    cache_.emplace(std::move(k), key);
    return key;
  }
  return core::corruption("sealed data key does not open with the repository's agent key pair");
}

core::Result<core::Bytes> DataKeyOpener::open_file(core::ByteView stored) {
  if (!looks_like_agent_file(stored)) return core::corruption("not an agent file");
  ASSIGN_OR_RETURN(crypto::Key key,
                   open_key(stored.subspan(kAgentFileMagic.size(), kSealedDataKeySize)));
  return crypto::open(key, stored.subspan(kAgentFileOverhead));
}

}  // namespace cairn::repo
