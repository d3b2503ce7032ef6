#include "repo/repository.h"

#include <malloc.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "core/thread_pool.h"
#include "repo/file_codec.h"
#include "repo/maintenance.h"

namespace cairn::repo {

using storage::FileType;
using storage::Handle;

namespace {
// An index file is written after this many packs (~1 GiB) so that a long
// backup killed midway leaves most of its packs indexed and reusable.
constexpr size_t kPacksPerIndexFile = 64;
constexpr size_t kBlobsPerIndexFile = 100000;
// store_blob's per-thread buffer: a 2 MiB chunk compressed (or stored raw)
// and sealed, with room to spare.
constexpr size_t kReusedSealBuffer = (2u << 20) + (64u << 10);
}  // namespace

Repository::Repository(std::shared_ptr<storage::Backend> backend, MasterKey key, Config config,
                       std::string key_id)
    : backend_(std::move(backend)),
      key_(key),
      config_(std::move(config)),
      gear_(make_gear_table(config_.gear_seed)),
      key_id_(std::move(key_id)) {
  upload_limit_ = static_cast<size_t>(std::clamp(backend_->preferred_upload_concurrency(), 1, 64));
}

Repository::~Repository() {
  {
    std::lock_guard lock(upload_mu_);
    upload_stop_ = true;
  }
  upload_work_cv_.notify_all();
  // Uploads in flight finish; queued ones are dropped (never indexed, so
  // nothing refers to them).
  for (auto& t : upload_threads_) t.join();
}

core::Result<std::unique_ptr<Repository>> Repository::init(
    std::shared_ptr<storage::Backend> backend, std::string_view password,
    const InitOptions& options) {
  if (password.empty()) return core::invalid_argument("empty password");
  if (options.create_container) {
    core::Status made = backend->create_container();
    if (!made.ok() && made.code() != core::Code::kUnsupported) return made;
  }
  ASSIGN_OR_RETURN(bool exists, backend->exists());
  if (exists) return core::already_exists("a repository already exists at " + backend->location());
  TRY(backend->create());
  MasterKey master = MasterKey::generate();
  Config config = Config::generate();
  config.chunker = options.chunker;
  ASSIGN_OR_RETURN(auto key_file, make_key_file(master, password, options.kdf));
  TRY(backend->save({FileType::kKey, key_file.first}, key_file.second));
  std::string cfg = config.to_json();
  // The config is written last: its presence is what marks a repository as existing.
  TRY(backend->save({FileType::kConfig, "config"},
                    encode_file(master.encrypt, core::as_bytes(cfg), false)));
  return std::unique_ptr<Repository>(
      new Repository(std::move(backend), master, config, key_file.first));
}

core::Result<std::unique_ptr<Repository>> Repository::open(
    std::shared_ptr<storage::Backend> backend, std::string_view password) {
  ASSIGN_OR_RETURN(bool exists, backend->exists());
  if (!exists)
    return core::not_found("no repository at " + backend->location() + " (run cairn init)");
  std::vector<std::string> key_ids;
  TRY(backend->list(FileType::kKey,
                    [&](const storage::FileInfo& fi) { key_ids.push_back(fi.name); }));
  if (key_ids.empty()) return core::corruption("repository has no key files (keys/ is empty)");
  std::sort(key_ids.begin(), key_ids.end());
  std::vector<std::string> broken;
  // Key files are small: load them all, then try the ones that cost one HMAC
  // before those that cost an argon2id run each.
  std::vector<std::pair<std::string, core::Bytes>> keys;
  for (const auto& id : key_ids) {
    auto bytes = backend->load({FileType::kKey, id});
    if (!bytes.ok()) {
      broken.push_back("keys/" + id + ": " + bytes.status().message());
      continue;
    }
    keys.emplace_back(id, std::move(*bytes));
  }
  std::stable_partition(keys.begin(), keys.end(), [](const auto& k) {
    auto info = parse_key_file_info(k.second);
    return info.ok() && (info->type == "keyfile" || info->agent_secret_is_key_file);
  });
  bool any_wrong = false;
  for (auto& [id, key_bytes] : keys) {
    const core::Bytes* bytes = &key_bytes;
    // --- agent keys: no master key, a session data key sealed to the repository ---
    auto kinfo = parse_key_file_info(*bytes);
    if (kinfo.ok() && kinfo->type == "agent") {
      auto agent = open_agent_key_file(*bytes, password);
      if (!agent.ok()) {
        if (agent.status().code() == core::Code::kWrongPassword) {
          any_wrong = true;
        } else {
          broken.push_back("keys/" + id + ": " + agent.status().message());
        }
        continue;
      }
      ASSIGN_OR_RETURN(Config config, Config::from_json(core::as_bytes(agent->config_json)));
      MasterKey partial{};
      partial.mac = agent->mac;  // the encryption key stays all zero and unused
      auto repo =
          std::unique_ptr<Repository>(new Repository(std::move(backend), partial, config, id));
      repo->agent_ = std::make_unique<AgentSession>(AgentSession::start(agent->repository_key));
      repo->append_only_ = true;
      return repo;
    }
    // --- end agent keys ---
    auto master = open_key_file(*bytes, password);
    if (!master.ok()) {
      if (master.status().code() == core::Code::kWrongPassword) {
        any_wrong = true;
      } else {
        broken.push_back("keys/" + id + ": " + master.status().message());
      }
      continue;
    }
    ASSIGN_OR_RETURN(auto cfg_bytes, backend->load({FileType::kConfig, "config"}));
    auto cfg_plain = decode_file(master->encrypt, cfg_bytes);
    if (!cfg_plain.ok()) return cfg_plain.status().with_context("config");
    ASSIGN_OR_RETURN(Config config, Config::from_json(*cfg_plain));
    ASSIGN_OR_RETURN(KeyFileInfo info, parse_key_file_info(*bytes));
    auto repo =
        std::unique_ptr<Repository>(new Repository(std::move(backend), *master, config, id));
    repo->append_only_ = info.append_only;
    repo->load_agent_key_pairs(keys);
    return repo;
  }
  if (any_wrong && broken.empty())
    return core::wrong_password("wrong password: no key file opens with it");
  std::string msg =
      any_wrong ? "wrong password, and some key files are unreadable" : "no readable key file";
  for (const auto& b : broken) msg += "\n  " + b;
  return core::Status(any_wrong ? core::Code::kWrongPassword : core::Code::kCorruption, msg);
}

namespace {

// How many small repository files (index, snapshots) to read at once: as
// many as the backend keeps uploads in flight, since on S3 each is a round trip.
size_t file_reader_count(const storage::Backend& backend) {
  return static_cast<size_t>(std::max(1, backend.preferred_upload_concurrency()));
}

// Threads for that; none (read on the caller's thread) for one file or one reader.
std::unique_ptr<core::ThreadPool> file_readers(const storage::Backend& backend, size_t files) {
  const size_t readers = file_reader_count(backend);
  if (readers < 2 || files < 2) return nullptr;
  return std::make_unique<core::ThreadPool>(std::min(readers, files), 2 * readers);
}

// read(i) for every i in [begin, end), on `pool` if there is one; returns
// when all are done.
void read_each(core::ThreadPool* pool, size_t begin, size_t end,
               const std::function<void(size_t)>& read) {
  for (size_t i = begin; i < end; ++i) {
    if (pool)
      pool->submit([&read, i] { read(i); });
    else
      read(i);
  }
  if (pool) pool->wait_idle();
}

}  // namespace

core::Status Repository::load_index(std::vector<std::string>* problems) {
  // An agent cannot read the index: it deduplicates within its session only.
  if (agent_) return {};
  // Markers first: an index file read before a marker could otherwise let a
  // blob in a pack that prune is about to delete count as stored.
  ASSIGN_OR_RETURN(auto markers, list_markers(*this));
  for (const auto& m : markers) index_.exclude_packs(m.pack_ids());
  std::lock_guard lock(loaded_mu_);
  // An index file that vanishes between listing and reading was replaced by
  // prune, which stores the replacement first: list again to find it.
  for (int attempt = 0; attempt < 10; ++attempt) {
    std::vector<std::string> names;
    TRY(backend_->list(FileType::kIndex, [&](const storage::FileInfo& fi) {
      if (!loaded_index_files_.count(fi.name)) names.push_back(fi.name);
    }));
    bool vanished = false;
    // Several files are read and decoded at once: on S3 each is a round trip,
    // and a repository not pruned for a while has one per backup. A window at
    // a time, added in listed order, so memory holds a window, not the index twice.
    auto pool = file_readers(*backend_, names.size());
    const size_t window = 2 * file_reader_count(*backend_);
    using Decoded = core::Result<std::vector<PackContents>>;
    for (size_t begin = 0; begin < names.size(); begin += window) {
      const size_t end = std::min(names.size(), begin + window);
      std::vector<std::optional<Decoded>> decoded(end - begin);
      read_each(pool.get(), begin, end, [this, &names, &decoded, begin](size_t i) {
        auto plain = load_file(FileType::kIndex, names[i]);
        decoded[i - begin] = plain.ok() ? decode_index(*plain) : Decoded(plain.status());
      });
      for (size_t i = begin; i < end; ++i) {
        Decoded& packs = *decoded[i - begin];
        if (!packs.ok() && packs.status().code() == core::Code::kNotFound) {
          vanished = true;
          continue;
        }
        if (!packs.ok()) {
          if (problems) problems->push_back("index/" + names[i] + ": " + packs.status().message());
          continue;
        }
        for (const auto& pc : *packs) index_.add(pc);
        loaded_index_files_.insert(names[i]);
      }
    }
    if (!vanished) break;
  }
  return {};
}

void Repository::reset_index() {
  std::lock_guard lock(loaded_mu_);
  loaded_index_files_.clear();
  index_.clear();
  std::lock_guard wlock(index_mu_);
  for (const auto& pc : written_) index_.add(pc);  // stored by us, maybe not indexed yet
}

std::vector<std::string> Repository::loaded_index_files() {
  std::lock_guard lock(loaded_mu_);
  return {loaded_index_files_.begin(), loaded_index_files_.end()};
}

core::Result<bool> Repository::refresh_index() {
  size_t before = index_.pack_count();
  TRY(load_index());
  return index_.pack_count() != before;
}

core::Result<std::vector<KeyFileInfo>> Repository::list_keys() {
  std::vector<std::string> ids;
  TRY(backend_->list(FileType::kKey, [&](const storage::FileInfo& fi) { ids.push_back(fi.name); }));
  std::sort(ids.begin(), ids.end());
  std::vector<KeyFileInfo> out;
  for (const auto& id : ids) {
    ASSIGN_OR_RETURN(core::Bytes bytes, backend_->load({FileType::kKey, id}));
    auto info = parse_key_file_info(bytes);
    if (!info.ok()) return info.status().with_context("keys/" + id);
    out.push_back(std::move(*info));
  }
  return out;
}

core::Status Repository::require_full_key(const std::string& what) const {
  if (agent_) return agent_denied(what);
  if (!append_only_) return {};
  return core::Status(core::Code::kPermissionDenied,
                      "key " + key_id_.substr(0, 8) + " is append-only: it cannot " + what);
}

core::Result<std::string> Repository::add_key(std::string_view secret, const crypto::KdfParams& kdf,
                                              bool append_only, SecretKind kind) {
  if (secret.empty()) return core::invalid_argument("empty password");
  if (agent_) return agent_denied("add keys");
  ASSIGN_OR_RETURN(auto key_file,
                   make_key_file(key_, secret, kdf, append_only || append_only_, kind));
  TRY(backend_->save({FileType::kKey, key_file.first}, key_file.second));
  return key_file.first;
}

core::Status Repository::remove_key(const std::string& id_or_prefix) {
  TRY(require_full_key("remove keys"));
  std::vector<std::string> ids, matches;
  TRY(backend_->list(FileType::kKey, [&](const storage::FileInfo& fi) { ids.push_back(fi.name); }));
  for (const auto& id : ids)
    if (!id_or_prefix.empty() && id.compare(0, id_or_prefix.size(), id_or_prefix) == 0)
      matches.push_back(id);
  if (matches.empty()) return core::not_found("no key " + id_or_prefix);
  if (matches.size() > 1)
    return core::invalid_argument("key id prefix '" + id_or_prefix + "' is ambiguous");
  const std::string& id = matches.front();
  if (id == key_id_)
    return core::invalid_argument(
        "refusing to remove key " + id.substr(0, 8) +
        ": it is the key in use (open the repository with another password)");
  if (ids.size() <= 1) return core::invalid_argument("refusing to remove the last key");
  // --- agent keys: the last one holds the repository's X25519 pair ---
  auto is_agent_key = [&](const std::string& kid) {
    auto bytes = backend_->load({FileType::kKey, kid});
    if (!bytes.ok()) return false;
    auto info = parse_key_file_info(*bytes);
    return info.ok() && info->type == "agent";
  };
  if (is_agent_key(id) &&
      std::count_if(ids.begin(), ids.end(), [&](const std::string& k) { return is_agent_key(k); }) <= 1)
    return core::invalid_argument(
        "refusing to remove key " + id.substr(0, 8) +
        ": it is the last agent key, which holds the repository's agent key pair; data written by "
        "agents would become unreadable (add another agent key first)");
  // --- end agent keys ---
  return backend_->remove({FileType::kKey, id});
}

Id Repository::blob_id(core::ByteView plaintext) const {
  return Id::from_digest(crypto::hmac_sha256(key_.mac, plaintext));
}

void Repository::set_error(const core::Status& st) {
  std::lock_guard lock(stats_mu_);
  if (error_.ok()) error_ = st;
}

core::Result<bool> Repository::save_blob(BlobType type, const Id& id, core::ByteView plaintext) {
  return store_blob(type, id, plaintext, false);
}

core::Status Repository::save_blob_copy(BlobType type, const Id& id, core::ByteView plaintext) {
  return store_blob(type, id, plaintext, true).status();
}

std::vector<PackContents> Repository::written_packs() const {
  std::lock_guard lock(index_mu_);
  return written_;
}

core::Result<bool> Repository::store_blob(BlobType type, const Id& id, core::ByteView plaintext,
                                          bool force) {
  {
    std::lock_guard lock(known_mu_);
    if ((!force && index_.has_usable(id)) || !pending_.insert(id).second) return false;
  }
  PackEntry e;
  e.type = type;
  e.id = id;
  e.raw_length = static_cast<uint32_t>(plaintext.size());
  // One buffer: compress straight into it, then encrypt in place. Left
  // uninitialised: zstd and the cipher write only what they produce, so only
  // those pages are ever touched; zeroing the whole bound first cost a page
  // fault and a memset per 4 KiB of plaintext, ~25 % of wal-push's CPU.
  size_t cap = std::max(max_compressed_size(plaintext.size()), plaintext.size());
  // Agent blobs start with the session's sealed data key (repo/agent.h).
  const size_t prefix = agent_ ? kSealedDataKeySize : 0;
  const size_t need = prefix + crypto::kNonceSize + cap + crypto::kTagSize;
  // Typical chunks (up to 2 MiB) reuse one buffer per thread. A fresh heap
  // buffer per blob fragmented glibc's arenas: freed ones stayed resident
  // between long-lived allocations, ~30 MiB of peak RSS in a full backup.
  // The kept buffer is one mapping of its own (at least the mmap threshold
  // set in main()), of which a thread touches only what its blobs use;
  // larger blobs get a one-off mapping that is returned when they are done.
  thread_local std::unique_ptr<uint8_t[]> reused(new uint8_t[kReusedSealBuffer]);
  std::unique_ptr<uint8_t[]> one_off;
  if (need > kReusedSealBuffer) one_off.reset(new uint8_t[need]);
  uint8_t* const sealed_data = one_off ? one_off.get() : reused.get();
  uint8_t* body = sealed_data + prefix + crypto::kNonceSize;
  auto packed = compress_into(plaintext, compression_, body, cap);
  size_t body_len = packed ? *packed : plaintext.size();
  if (packed) {
    e.flags |= kBlobCompressed;
  } else if (!plaintext.empty()) {
    std::memcpy(body, plaintext.data(), plaintext.size());
  }
  if (agent_) {
    std::memcpy(sealed_data, agent_->sealed_key.data(), prefix);
    e.flags |= kBlobSealedKey;
  }
  crypto::seal_in_place(agent_ ? agent_->data_key : key_.encrypt, sealed_data + prefix, body_len);
  const core::ByteView sealed(sealed_data,
                              prefix + crypto::kNonceSize + body_len + crypto::kTagSize);
  TRY(append_to_pack(e, sealed));
  return true;
}

core::Status Repository::copy_stored_blob(const PackEntry& e, core::ByteView stored, BlobScratch& scratch) {
  if (stored.size() != e.length)
    return core::corruption("blob " + e.id.short_hex() + ": stored length does not match its entry");
  {
    auto plain = open_blob_into(e, stored, scratch);  // checks the tag and the id
    if (!plain.ok()) return plain.status().with_context("blob " + e.id.short_hex());
  }
  {
    std::lock_guard lock(known_mu_);
    if (!pending_.insert(e.id).second) return {};
  }
  return append_to_pack(e, stored);
}

core::Status Repository::append_to_pack(PackEntry e, core::ByteView sealed) {
  e.length = static_cast<uint32_t>(sealed.size());
  OpenPack full;
  bool is_full = false;
  {
    std::lock_guard lock(pack_mu_);
    OpenPack& p = open_packs_[static_cast<int>(e.type)];
    if (p.data.capacity() == 0) {
      if (!spare_pack_buffers_.empty()) {  // only with reuse_pack_buffers()
        p.data = std::move(spare_pack_buffers_.back());
        spare_pack_buffers_.pop_back();
      }
      p.data.reserve(kTargetPackSize + config_.chunker.max_size + 4096);
    }
    e.offset = static_cast<uint32_t>(p.data.size());
    p.data.insert(p.data.end(), sealed.begin(), sealed.end());
    p.entries.push_back(e);
    if (p.data.size() >= kTargetPackSize) {
      full = std::move(p);
      p = OpenPack{};
      is_full = true;
    }
  }
  {
    std::lock_guard lock(stats_mu_);
    (e.type == BlobType::kData ? stats_.data_blobs : stats_.tree_blobs)++;
    stats_.stored_bytes += e.length;
    stats_.raw_bytes += e.raw_length;
  }
  if (is_full) return write_pack(std::move(full));
  return {};
}

core::Status Repository::sticky_error() const {
  std::lock_guard lock(stats_mu_);
  return error_;
}

core::Status Repository::write_pack(OpenPack pack) {
  if (pack.entries.empty()) return {};
  TRY(sticky_error());
  // Sealing (header encryption, SHA-256 of ~16 MiB) stays on the producer's
  // CPU thread; the upload threads only wait for the network.
  core::Bytes header =
      agent_ ? encode_pack_header_with(
                   [this](core::ByteView plain) { return agent_->seal_file(plain); }, pack.entries)
             : encode_pack_header(key_.encrypt, pack.entries);
  pack.data.insert(pack.data.end(), header.begin(), header.end());
  SealedPack sealed{Id::from_digest(crypto::sha256(pack.data)), std::move(pack.data),
                    std::move(pack.entries)};
  {
    std::unique_lock lock(upload_mu_);
    if (upload_threads_.empty()) {
      for (size_t i = 0; i < upload_limit_; ++i) {
        upload_threads_.emplace_back([this] { upload_loop(); });
      }
    }
    upload_room_cv_.wait(lock, [&] { return uploads_outstanding_ < upload_limit_; });
    upload_queue_.push_back(std::move(sealed));
    ++uploads_outstanding_;
  }
  upload_work_cv_.notify_one();
  return {};
}

void Repository::upload_loop() {
  for (;;) {
    SealedPack pack;
    {
      std::unique_lock lock(upload_mu_);
      upload_work_cv_.wait(lock, [&] { return upload_stop_ || !upload_queue_.empty(); });
      if (upload_stop_) return;
      pack = std::move(upload_queue_.front());
      upload_queue_.pop_front();
    }
    // After the first failure the backup is lost anyway: do not keep uploading.
    if (sticky_error().ok()) {
      core::Status st = upload_pack(std::move(pack));
      if (!st.ok()) set_error(st);
    }
    {
      std::lock_guard lock(upload_mu_);
      --uploads_outstanding_;
    }
    upload_room_cv_.notify_all();
  }
}

void Repository::wait_for_uploads() {
  std::unique_lock lock(upload_mu_);
  upload_room_cv_.wait(lock, [&] { return uploads_outstanding_ == 0; });
}

core::Status Repository::upload_pack(SealedPack pack) {
  // The buffer goes as soon as the backend has the bytes (a local save:
  // before its fsyncs), so packs waiting on the disk hold no memory.
  storage::SaveOptions options;
  options.data_consumed = [this, &pack] {
    if (reuse_pack_buffers_) {
      pack.data.clear();
      std::lock_guard lock(pack_mu_);
      if (spare_pack_buffers_.size() < upload_limit_) spare_pack_buffers_.push_back(std::move(pack.data));
    }
    pack.data = core::Bytes();
  };
  options.sha256_hex = pack.id.hex();  // the pack id is its bytes' SHA-256
  core::Status st = backend_->save_with({FileType::kPack, pack.id.hex()}, pack.data, options);
  // Same name = same bytes (content-addressed): an earlier attempt stored it.
  if (st.code() == core::Code::kAlreadyExists) st = core::Status();
  if (!st.ok()) return st.with_context("storing pack " + pack.id.hex());
  pack.data = core::Bytes();  // release the buffer before indexing
  // Hand freed heap pages back to the kernel once per pack (~16 MiB stored),
  // on this thread that otherwise only waits for the backend. Chunks and
  // blobs below the mmap threshold come and go on ~10 threads' arenas, and
  // the free space they leave between longer-lived allocations stayed
  // resident: ~15-30 MiB of a full backup's peak RSS. Costs well under a
  // millisecond per call.
  malloc_trim(0);
  PackContents pc{pack.id, std::move(pack.entries)};
  std::lock_guard lock(index_mu_);
  index_.add(pc);
  {
    std::lock_guard klock(known_mu_);
    for (const auto& e : pc.blobs) pending_.erase(e.id);
  }
  {
    std::lock_guard slock(stats_mu_);
    stats_.packs++;
  }
  unindexed_blobs_ += pc.blobs.size();
  written_.push_back(pc);
  unindexed_.push_back(std::move(pc));
  if (unindexed_.size() >= kPacksPerIndexFile || unindexed_blobs_ >= kBlobsPerIndexFile)
    return write_index_locked();
  return {};
}

core::Result<std::vector<std::string>> Repository::save_index_files(
    std::vector<PackContents> packs, const std::function<void()>& on_saved) {
  std::vector<std::string> names;
  std::vector<PackContents> batch;
  size_t batch_blobs = 0;
  auto write_batch = [&]() -> core::Status {
    if (batch.empty()) return {};
    ASSIGN_OR_RETURN(std::string name, save_file(FileType::kIndex, encode_index(batch)));
    if (on_saved) on_saved();
    names.push_back(name);
    batch.clear();
    batch_blobs = 0;
    return {};
  };
  for (auto& pc : packs) {
    batch_blobs += pc.blobs.size();
    batch.push_back(std::move(pc));
    if (batch_blobs >= kBlobsPerIndexFile) TRY(write_batch());
  }
  TRY(write_batch());
  return names;
}

core::Status Repository::write_index_locked() {
  if (unindexed_.empty()) return {};
  core::Bytes plain = encode_index(unindexed_);
  auto saved = save_file(FileType::kIndex, plain);
  if (!saved.ok()) {
    set_error(saved.status());
    return saved.status().with_context("storing index");
  }
  unindexed_.clear();
  unindexed_blobs_ = 0;
  return {};
}

core::Status Repository::flush() {
  OpenPack packs[2];
  {
    std::lock_guard lock(pack_mu_);
    for (int i = 0; i < 2; ++i) {
      packs[i] = std::move(open_packs_[i]);
      open_packs_[i] = OpenPack{};
    }
  }
  core::Status queued;
  for (auto& p : packs) {
    if (queued.ok()) queued = write_pack(std::move(p));
  }
  // Every pack is stored (or failed) before the index that names it is written.
  wait_for_uploads();
  TRY(sticky_error());
  TRY(queued);
  std::lock_guard lock(index_mu_);
  return write_index_locked();
}

WriteStats Repository::write_stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

core::Result<core::Bytes> Repository::load_blob(const Id& id) {
  auto loc = index_.lookup(id);
  if (!loc) {
    // A snapshot written after our index was loaded (a concurrent backup)
    // names blobs in index files we have not read yet.
    ASSIGN_OR_RETURN(bool grew, refresh_index());
    if (grew) loc = index_.lookup(id);
  }
  if (!loc) return core::not_found("blob " + id.hex() + " is not in the index");
  auto data = loc->entry.type == BlobType::kTree && backend_->prefers_whole_reads()
                  ? load_tree_blob_cached(id, *loc)
                  : load_blob_at(id, *loc);
  if (!data.ok() && data.status().code() == core::Code::kNotFound &&
      index_.is_excluded(loc->pack)) {
    // A concurrent prune swept this marked pack. The blob may have another
    // copy (a rescued pack): forget the swept pack and read every index file
    // again so that copy takes its place (rare: only a reader that overlaps a
    // sweep, and only for blobs with copies in two marked packs).
    index_.drop_pack(loc->pack);
    {
      std::lock_guard lock(loaded_mu_);
      loaded_index_files_.clear();
    }
    TRY(load_index());
    auto again = index_.lookup(id);
    if (!again) return data.status().with_context("(swept by prune)");
    return load_blob_at(id, *again);
  }
  return data;
}

core::Result<core::Bytes> Repository::load_tree_blob_cached(const Id& id, const BlobLocation& loc) {
  constexpr uint64_t kTreeCacheLimit = 48ull << 20;
  std::shared_ptr<const core::Bytes> pack;
  {
    std::lock_guard lock(tree_cache_mu_);
    auto it = tree_packs_.find(loc.pack);
    if (it != tree_packs_.end()) pack = it->second;
  }
  if (!pack) {
    auto whole = backend_->load({FileType::kPack, loc.pack.hex()});
    if (!whole.ok()) return whole.status().with_context("pack " + loc.pack.hex());
    // Any copy can be checked without the key: the name is the content's hash.
    if (core::hex_encode(crypto::sha256(*whole)) != loc.pack.hex())
      return core::corruption("pack " + loc.pack.hex() + ": content does not match its name");
    pack = std::make_shared<const core::Bytes>(std::move(*whole));
    std::lock_guard lock(tree_cache_mu_);
    if (tree_cache_bytes_ + pack->size() > kTreeCacheLimit) {
      tree_packs_.clear();
      tree_cache_bytes_ = 0;
    }
    if (tree_packs_.emplace(loc.pack, pack).second) tree_cache_bytes_ += pack->size();
  }
  if (uint64_t(loc.entry.offset) + loc.entry.length > pack->size())
    return core::corruption("pack " + loc.pack.hex() + " is shorter than the index says");
  core::ByteView sealed(pack->data() + loc.entry.offset, loc.entry.length);
  auto plain = open_blob(loc.entry, sealed);
  if (!plain.ok())
    return plain.status().with_context("blob " + id.short_hex() + " in pack " + loc.pack.hex());
  return plain;
}

core::Result<core::Bytes> Repository::load_blob_at(const Id& id, const BlobLocation& loc) {
  if (loc.entry.id != id)
    return core::invalid_argument("blob location does not match blob " + id.short_hex());
  auto sealed =
      backend_->load({FileType::kPack, loc.pack.hex()}, loc.entry.offset, loc.entry.length);
  if (!sealed.ok()) return sealed.status().with_context("pack " + loc.pack.hex());
  auto plain = open_blob(loc.entry, *sealed);
  if (!plain.ok())
    return plain.status().with_context("blob " + id.short_hex() + " in pack " + loc.pack.hex());
  return plain;
}

core::Result<Tree> Repository::load_tree(const Id& id) {
  ASSIGN_OR_RETURN(core::Bytes bytes, load_blob(id));
  auto tree = decode_tree(bytes);
  if (!tree.ok()) return tree.status().with_context("tree " + id.short_hex());
  return tree;
}

core::Result<Id> Repository::save_tree(const Tree& tree, bool* added) {
  std::string text = encode_tree(tree);
  Id id = blob_id(core::as_bytes(text));
  ASSIGN_OR_RETURN(bool was_added, save_blob(BlobType::kTree, id, core::as_bytes(text)));
  if (added) *added = was_added;
  return id;
}

core::Result<core::Bytes> Repository::load_file(FileType type, const std::string& name,
                                                bool* by_agent) {
  Handle h{type, name};
  ASSIGN_OR_RETURN(core::Bytes stored, backend_->load(h));
  if (core::hex_encode(crypto::sha256(stored)) != name)
    return core::corruption(h.to_string() + ": content does not match its name (damaged file)");
  auto plain = decode_stored(stored, by_agent);
  if (!plain.ok()) return plain.status().with_context(h.to_string());
  return plain;
}

core::Result<std::string> Repository::save_file(FileType type, core::ByteView plaintext,
                                                const storage::SaveOptions& options) {
  core::Bytes stored = encode_stored(plaintext, true);
  std::string name = core::hex_encode(crypto::sha256(stored));
  storage::SaveOptions named = options;
  named.sha256_hex = name;
  core::Status st = backend_->save_with({type, name}, stored, named);
  if (!st.ok() && st.code() != core::Code::kAlreadyExists) return st;
  return name;
}

core::Status Repository::save_named_file(FileType type, const std::string& name,
                                         core::ByteView plaintext) {
  return backend_->save({type, name}, encode_stored(plaintext, true));
}

core::Result<core::Bytes> Repository::load_named_file(FileType type, const std::string& name) {
  Handle h{type, name};
  ASSIGN_OR_RETURN(core::Bytes stored, backend_->load(h));
  auto plain = decode_stored(stored);
  if (!plain.ok()) return plain.status().with_context(h.to_string());
  return plain;
}

core::Result<std::string> Repository::save_snapshot(const Snapshot& s) {
  std::string text = s.to_json().dump(2);
  return save_file(FileType::kSnapshot, core::as_bytes(text));
}

core::Result<std::vector<SnapshotRef>> Repository::list_snapshots(
    std::vector<std::string>* problems) {
  if (agent_) return agent_denied("read snapshots");
  std::vector<std::string> names;
  TRY(backend_->list(FileType::kSnapshot,
                     [&](const storage::FileInfo& fi) { names.push_back(fi.name); }));
  // Read several at once (each is a round trip on S3); kept in listed order.
  std::vector<std::optional<core::Result<Snapshot>>> loaded(names.size());
  std::vector<char> by_agent(names.size(), 0);
  auto pool = file_readers(*backend_, names.size());
  read_each(pool.get(), 0, names.size(), [&](size_t i) {
    bool agent = false;
    auto plain = load_file(FileType::kSnapshot, names[i], &agent);
    by_agent[i] = agent;
    loaded[i] = plain.ok() ? Snapshot::from_json(*plain) : core::Result<Snapshot>(plain.status());
  });
  std::vector<SnapshotRef> out;
  for (size_t i = 0; i < names.size(); ++i) {
    core::Result<Snapshot>& snap = *loaded[i];
    // Listed, then gone: a concurrent forget removed it. Not a problem of the
    // repository (a server listing one service while another's snapshot was
    // forgotten reported it, and its own snapshot looked missing).
    if (!snap.ok() && snap.status().code() == core::Code::kNotFound) continue;
    if (!snap.ok()) {
      if (problems) problems->push_back("snapshots/" + names[i] + ": " + snap.status().message());
      continue;
    }
    out.push_back({names[i], std::move(*snap), by_agent[i] != 0});
  }
  std::sort(out.begin(), out.end(), [](const SnapshotRef& a, const SnapshotRef& b) {
    return a.snapshot.time.unix_ns != b.snapshot.time.unix_ns
               ? a.snapshot.time.unix_ns < b.snapshot.time.unix_ns
               : a.id < b.id;
  });
  return out;
}

core::Result<SnapshotRef> Repository::find_snapshot(const std::string& ref,
                                                    const std::string& service,
                                                    const std::string& host) {
  if (ref.size() < 4 && ref != "latest")
    return core::invalid_argument("snapshot id '" + ref +
                                  "' is too short (use at least 4 hex chars)");
  ASSIGN_OR_RETURN(auto all, list_snapshots());
  if (ref == "latest") {
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      if (!service.empty() && it->snapshot.service != service) continue;
      if (!host.empty() && it->snapshot.hostname != host) continue;
      return *it;
    }
    return core::not_found("no snapshot matches 'latest'" +
                           (service.empty() ? std::string() : " for service " + service));
  }
  const SnapshotRef* found = nullptr;
  for (const auto& s : all) {
    if (s.id.compare(0, ref.size(), ref) == 0) {
      if (found) return core::invalid_argument("snapshot id prefix '" + ref + "' is ambiguous");
      found = &s;
    }
  }
  if (!found) return core::not_found("no snapshot with id " + ref);
  return *found;
}

// --- write-only agent keys ---

core::Status Repository::agent_denied(const std::string& what) const {
  return core::Status(core::Code::kPermissionDenied,
                      "key " + key_id_.substr(0, 8) + " is a write-only agent key: it cannot " +
                          what + " (use a password or key file of the repository)");
}

void Repository::load_agent_key_pairs(
    const std::vector<std::pair<std::string, core::Bytes>>& key_files) {
  std::vector<crypto::BoxKeyPair> pairs;
  for (const auto& [id, bytes] : key_files) {
    auto info = parse_key_file_info(bytes);
    if (!info.ok() || info->type != "agent") continue;
    auto pair = agent_key_pair(bytes, key_);
    // A pair that does not open is not used; data sealed to it then fails
    // to open and check reports it, naming the pack or file.
    if (!pair.ok()) continue;
    bool known = std::any_of(pairs.begin(), pairs.end(), [&](const crypto::BoxKeyPair& p) {
      return p.public_key == pair->public_key;
    });
    if (!known) pairs.push_back(*pair);
  }
  if (!pairs.empty()) opener_ = std::make_shared<DataKeyOpener>(std::move(pairs));
}

core::Result<std::string> Repository::add_agent_key(std::string_view secret,
                                                    const crypto::KdfParams& kdf,
                                                    SecretKind kind) {
  if (secret.empty()) return core::invalid_argument("empty password");
  if (agent_) return agent_denied("add keys");
  // Every agent key of a repository carries the same pair: reuse the one
  // found at open (re-read keys/ in case another process added one since).
  std::vector<std::pair<std::string, core::Bytes>> key_files;
  TRY(backend_->list(FileType::kKey, [&](const storage::FileInfo& fi) {
    key_files.emplace_back(fi.name, core::Bytes());
  }));
  for (auto& [id, bytes] : key_files) {
    auto loaded = backend_->load({FileType::kKey, id});
    if (loaded.ok()) bytes = std::move(*loaded);
  }
  load_agent_key_pairs(key_files);
  crypto::BoxKeyPair pair;
  bool have_pair = false;
  for (const auto& [id, bytes] : key_files) {
    auto info = parse_key_file_info(bytes);
    if (!info.ok() || info->type != "agent") continue;
    auto p = agent_key_pair(bytes, key_);
    if (!p.ok()) return p.status().with_context("keys/" + id);
    pair = *p;
    have_pair = true;
    break;
  }
  if (!have_pair) pair = crypto::box_keypair();
  AgentKey agent{key_.mac, config_.to_json(), pair.public_key};
  ASSIGN_OR_RETURN(auto key_file, make_agent_key_file(key_, agent, pair, secret, kdf, kind));
  TRY(backend_->save({FileType::kKey, key_file.first}, key_file.second));
  if (!opener_) opener_ = std::make_shared<DataKeyOpener>(std::vector<crypto::BoxKeyPair>{pair});
  return key_file.first;
}

core::Bytes Repository::encode_stored(core::ByteView plaintext, bool compress) const {
  if (agent_) return agent_->seal_file(frame_file(plaintext, compress));
  return encode_file(key_.encrypt, plaintext, compress);
}

core::Result<core::Bytes> Repository::decode_stored(core::ByteView stored, bool* by_agent) {
  if (by_agent) *by_agent = false;
  if (agent_) return agent_denied("read repository files");
  // A file written with the master key may start with the agent magic by
  // chance (its first bytes are a random nonce): fall back to the master key.
  core::Status agent_error;
  if (looks_like_agent_file(stored)) {
    if (opener_) {
      auto framed = opener_->open_file(stored);
      if (framed.ok()) {
        if (by_agent) *by_agent = true;
        return unframe_file(*framed);
      }
      agent_error = framed.status();
    } else {
      agent_error = core::corruption("written by an agent, but no agent key pair is known");
    }
  }
  auto plain = decode_file(key_.encrypt, stored);
  if (!plain.ok() && !agent_error.ok()) return agent_error;
  return plain;
}

core::Result<core::Bytes> Repository::open_blob(const PackEntry& e, core::ByteView stored) {
  BlobScratch scratch;
  TRY(open_blob_into(e, stored, scratch).status());
  return e.compressed() ? std::move(scratch.raw) : std::move(scratch.decrypted);
}

core::Result<core::ByteView> Repository::open_blob_into(const PackEntry& e, core::ByteView stored,
                                                        BlobScratch& scratch) {
  if (agent_) return agent_denied("read data");
  if (!(e.flags & kBlobSealedKey)) return repo::open_blob_into(key_.encrypt, key_.mac, e, stored, scratch);
  if (!opener_) return core::corruption("blob written by an agent, but no agent key pair is known");
  if (stored.size() < kSealedDataKeySize) return core::corruption("agent blob is too short");
  ASSIGN_OR_RETURN(crypto::Key key, opener_->open_key(stored.first(kSealedDataKeySize)));
  return repo::open_blob_into(key, key_.mac, e, stored.subspan(kSealedDataKeySize), scratch);
}

core::Result<HeaderRead> Repository::decode_pack_header(core::ByteView tail, uint64_t pack_size) {
  if (agent_) return agent_denied("read pack headers");
  return decode_pack_header_with(
      [this](core::ByteView sealed) -> core::Result<core::Bytes> {
        if (looks_like_agent_file(sealed) && opener_) {
          auto plain = opener_->open_file(sealed);
          if (plain.ok()) return plain;
        }
        return crypto::open(key_.encrypt, sealed);
      },
      tail, pack_size);
}

}  // namespace cairn::repo
