#include "storage/memory_backend.h"

#include <openssl/evp.h>

#include <vector>

#include "storage/local_backend.h"

namespace cairn::storage {

namespace {
size_t slot(FileType t) { return static_cast<size_t>(t); }
}  // namespace

MemoryBackend::Object MemoryBackend::find(const Handle& h) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& objects = objects_[slot(h.type)];
  auto it = objects.find(h.name);
  return it == objects.end() ? nullptr : it->second;
}

core::Status MemoryBackend::save(const Handle& h, core::ByteView data) {
  TRY(LocalBackend::check_handle(h));
  auto object = std::make_shared<const core::Bytes>(data.begin(), data.end());
  std::lock_guard<std::mutex> lock(mu_);
  if (!objects_[slot(h.type)].emplace(h.name, std::move(object)).second) {
    return core::already_exists(h.to_string() + ": object already exists");
  }
  return core::ok_status();
}

core::Status MemoryBackend::save_with(const Handle& h, core::ByteView data,
                                      const SaveOptions& options) {
  if (!options.sha256_hex.empty()) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
      return core::io_error(h.to_string() + ": sha256 failed");
    if (core::hex_encode({md, len}) != options.sha256_hex)
      return core::corruption(h.to_string() + ": body does not match the sha256 it was sent with");
  }
  return save(h, data);
}

core::Result<core::Bytes> MemoryBackend::load(const Handle& h, uint64_t offset, uint64_t length) {
  TRY(LocalBackend::check_handle(h));
  Object object = find(h);
  if (!object) return core::not_found(h.to_string() + ": no such object");
  const uint64_t size = object->size();
  if (offset > size || length > size - offset) {
    return core::invalid_argument(h.to_string() + ": range [" + std::to_string(offset) + ", +" +
                                  std::to_string(length) + ") is beyond the end (size " +
                                  std::to_string(size) + ")");
  }
  const uint64_t n = length == 0 ? size - offset : length;
  return core::Bytes(object->begin() + static_cast<ptrdiff_t>(offset),
                     object->begin() + static_cast<ptrdiff_t>(offset + n));
}

core::Result<FileInfo> MemoryBackend::stat(const Handle& h) {
  TRY(LocalBackend::check_handle(h));
  Object object = find(h);
  if (!object) return core::not_found(h.to_string() + ": no such object");
  return FileInfo{h.name, object->size()};
}

core::Status MemoryBackend::list(FileType t, const std::function<void(const FileInfo&)>& fn) {
  // Snapshot first so fn may call back into the backend without deadlocking.
  std::vector<FileInfo> infos;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, object] : objects_[slot(t)]) infos.push_back({name, object->size()});
  }
  for (const FileInfo& info : infos) fn(info);
  return core::ok_status();
}

core::Status MemoryBackend::remove(const Handle& h) {
  TRY(LocalBackend::check_handle(h));
  std::lock_guard<std::mutex> lock(mu_);
  objects_[slot(h.type)].erase(h.name);
  return core::ok_status();
}

core::Result<bool> MemoryBackend::exists() {
  return find(Handle{FileType::kConfig, "config"}) != nullptr;
}

core::Status MemoryBackend::create() {
  if (find(Handle{FileType::kConfig, "config"})) {
    return core::already_exists("memory: a repository already exists here");
  }
  return core::ok_status();
}

}  // namespace cairn::storage
