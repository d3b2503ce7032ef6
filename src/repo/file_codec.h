// Encoding of whole repository files (config, index, snapshots, locks):
// sealed = AES-256-GCM(encrypt key, flag byte || payload), where flag 0 means
// payload is the plaintext and 1 means payload is one zstd frame of it.
#pragma once

#include "core/bytes.h"
#include "core/status.h"
#include "crypto/crypto.h"

namespace cairn::repo {

core::Bytes encode_file(const crypto::Key& key, core::ByteView plaintext, bool compress);
// The unsealed layer alone (flag || payload), for files sealed another way
// (agent files, repo/agent.h).
core::Bytes frame_file(core::ByteView plaintext, bool compress);
core::Result<core::Bytes> unframe_file(core::ByteView framed);
core::Result<core::Bytes> decode_file(const crypto::Key& key, core::ByteView stored);

}  // namespace cairn::repo
