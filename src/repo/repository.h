// Repository: the encrypted, deduplicating content store on top of a
// storage::Backend. Owns the master key, config, index and the packer.
//
// Thread safety: after open()/load_index(), save_blob/load_blob and friends
// may be called from many threads at once. flush() must not race save_blob.
//
// Uploads: a full pack is sealed on the thread that filled it and handed to
// a small pool of upload threads (backend().preferred_upload_concurrency()
// of them, started on the first pack). At most that many packs are queued or
// in flight; a producer blocks until one finishes, so memory stays bounded at
// N x ~16 MiB plus the open packs. A pack's buffer is freed as soon as the
// backend has its bytes (SaveOptions::data_consumed: a local save, before
// its fsyncs). The first failed upload is sticky: later
// save_blob() and flush() calls return it (naming the pack) and nothing is
// indexed for a pack that was not stored.
//
// Write order makes crashes harmless: a pack is stored before any index file
// names it, and index files are stored before the snapshot that needs them
// (flush() waits for every upload before it writes the index).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "repo/agent.h"
#include "repo/chunker.h"
#include "repo/compression.h"
#include "repo/config.h"
#include "repo/ids.h"
#include "repo/index.h"
#include "repo/keys.h"
#include "repo/pack.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "storage/backend.h"

namespace cairn::repo {

struct InitOptions {
  crypto::KdfParams kdf;  // from crypto::calibrate_kdf unless set
  ChunkerParams chunker;
  // Create a missing container first (an S3 bucket: init --create-bucket).
  bool create_container = false;
};

struct SnapshotRef {
  std::string id;  // hex file id
  Snapshot snapshot;
  // Stored by a write-only agent key: its contents are that host's word
  // (docs/security.md), worth a look before forget drops other snapshots.
  bool written_by_agent = false;
};

// Counters of what a writer stored (for backup summaries).
struct WriteStats {
  uint64_t data_blobs = 0, tree_blobs = 0, stored_bytes = 0, raw_bytes = 0, packs = 0;
};

class Repository {
 public:
  static core::Result<std::unique_ptr<Repository>> init(std::shared_ptr<storage::Backend> backend,
                                                        std::string_view password,
                                                        const InitOptions& options);
  // Tries every key file (cheap "keyfile" keys before argon2id passwords);
  // kWrongPassword if none opens, kNotFound (mapped to exit code 10 by the
  // CLI) when there is no repository at the location.
  static core::Result<std::unique_ptr<Repository>> open(std::shared_ptr<storage::Backend> backend,
                                                        std::string_view password);
  ~Repository();

  // Reads every index file. Unreadable index files are skipped and described
  // in `problems` (check reports them); the data they described is then
  // simply unknown, never misread.
  core::Status load_index(std::vector<std::string>* problems = nullptr);
  // Before the index files, every maintenance marker is read and its packs are
  // excluded from deduplication (see repo/maintenance.h); an unreadable marker
  // is an error.
  //
  // Loads index files written since load_index (by concurrent backups).
  // Returns true if any was new. load_blob calls it once on a miss.
  core::Result<bool> refresh_index();

  // Drops the in-memory index so the next load_index reads everything again
  // (prune, after it changed index files and markers). Not while writing.
  void reset_index();
  // Names of the index files read so far.
  std::vector<std::string> loaded_index_files();

  storage::Backend& backend() { return *backend_; }
  const Config& config() const { return config_; }
  const MasterKey& key() const { return key_; }
  const GearTable& gear() const { return gear_; }
  const std::string& key_id() const { return key_id_; }
  Index& index() { return index_; }
  void set_compression(Compression c) { compression_ = c; }
  // For work that writes pack after pack from few threads (prune's repack):
  // keep stored packs' buffers (as many as uploads in flight) for the next
  // packs instead of freeing them, which saves faulting in ~16 MiB per pack.
  // Off by default: in a backup, with its many pipeline threads, it raised
  // peak RSS by 15-20 MiB.
  void reuse_pack_buffers() { reuse_pack_buffers_ = true; }

  Id blob_id(core::ByteView plaintext) const;

  // Key files (several passwords can open one repository).
  core::Result<std::vector<KeyFileInfo>> list_keys();
  // Wraps this repository's master key with `secret` (a password or a key
  // file's secret); returns the new key id. Keys added through an
  // append-only key are append-only too.
  core::Result<std::string> add_key(std::string_view secret, const crypto::KdfParams& kdf,
                                    bool append_only = false,
                                    SecretKind kind = SecretKind::kPassword);
  // --- write-only agent keys (repo/agent.h, docs/security.md) ---
  // Adds an agent key: it may add backups but read nothing. The first one
  // gives the repository its X25519 key pair. Returns the new key id.
  core::Result<std::string> add_agent_key(std::string_view secret, const crypto::KdfParams& kdf,
                                          SecretKind kind);
  // This session opened with an agent key: it writes sealed data, reads
  // nothing but keys, and deduplicates only against what it wrote itself.
  bool is_agent() const { return agent_ != nullptr; }
  // Opens a blob's stored form (master-key or agent-sealed) and checks its id.
  core::Result<core::Bytes> open_blob(const PackEntry& e, core::ByteView stored);
  // open_blob() into a thread's reused buffers (see BlobScratch).
  core::Result<core::ByteView> open_blob_into(const PackEntry& e, core::ByteView stored,
                                              BlobScratch& scratch);
  // Parses a pack's header (see repo/pack.h) whoever sealed it.
  core::Result<HeaderRead> decode_pack_header(core::ByteView tail, uint64_t pack_size);
  // --- end agent keys ---

  // The key this session opened with is append-only (see KeyFileInfo).
  bool append_only() const { return append_only_; }
  // kPermissionDenied naming `what` when the key in use is append-only.
  core::Status require_full_key(const std::string& what) const;
  // Removes a key file by id or unique prefix. Refuses the key this session
  // opened with and the last remaining key (either would lock users out).
  core::Status remove_key(const std::string& id_or_prefix);

  // Stores a blob unless the index (or an open pack) already has it.
  // Returns true if it was newly added.
  core::Result<bool> save_blob(BlobType type, const Id& id, core::ByteView plaintext);
  // Stores a blob even if the index has it (prune's repacking).
  core::Status save_blob_copy(BlobType type, const Id& id, core::ByteView plaintext);
  // Prune's repacking without the work: `stored` is blob `e` exactly as it
  // was read from its pack (compressed, encrypted, maybe agent-sealed). It is
  // opened and its id checked (nothing damaged is copied), then appended to
  // an open pack as it is - no decompress, recompress and re-encrypt.
  core::Status copy_stored_blob(const PackEntry& e, core::ByteView stored, BlobScratch& scratch);
  // Packs stored by this process so far (their full contents).
  std::vector<PackContents> written_packs() const;
  // Writes all open packs and the index for everything stored so far.
  core::Status flush();
  WriteStats write_stats() const;

  core::Result<core::Bytes> load_blob(const Id& id);
  // Loads a blob from a recorded location (a hint: kNotFound when that pack
  // is gone, e.g. repacked; callers then use load_blob).
  core::Result<core::Bytes> load_blob_at(const Id& id, const BlobLocation& where);
  core::Result<Tree> load_tree(const Id& id);
  core::Result<Id> save_tree(const Tree& tree, bool* added = nullptr);

  // Whole encrypted files (index, snapshots): decode and verify the name.
  // `by_agent` (optional) is set when the file was stored by an agent key.
  core::Result<core::Bytes> load_file(storage::FileType type, const std::string& name,
                                      bool* by_agent = nullptr);
  core::Result<std::string> save_file(storage::FileType type, core::ByteView plaintext,
                                      const storage::SaveOptions& options = {});
  // Files whose name is a key rather than their content's hash (log archive
  // entries): the AEAD tag alone proves them authentic. Never overwrites.
  core::Status save_named_file(storage::FileType type, const std::string& name,
                               core::ByteView plaintext);
  core::Result<core::Bytes> load_named_file(storage::FileType type, const std::string& name);

  // Stores an index describing `packs` as index files of a bounded size
  // (prune and repair index rebuild the index this way); `on_saved` runs
  // after each file is stored. Returns their names.
  core::Result<std::vector<std::string>> save_index_files(std::vector<PackContents> packs,
                                                          const std::function<void()>& on_saved = {});

  core::Result<std::string> save_snapshot(const Snapshot& s);
  // All readable snapshots, oldest first; unreadable ones go to `problems`.
  core::Result<std::vector<SnapshotRef>> list_snapshots(std::vector<std::string>* problems = nullptr);
  // "latest" or a unique id prefix (at least 4 hex chars).
  core::Result<SnapshotRef> find_snapshot(const std::string& ref, const std::string& service = "",
                                          const std::string& host = "");

 private:
  Repository(std::shared_ptr<storage::Backend> backend, MasterKey key, Config config,
             std::string key_id);

  struct OpenPack {
    core::Bytes data;
    std::vector<PackEntry> entries;
  };
  struct SealedPack {
    Id id;
    core::Bytes data;
    std::vector<PackEntry> entries;
  };
  // Seals the pack and queues it for upload (blocks while the queue is full).
  core::Status write_pack(OpenPack pack);
  // Stores one sealed pack and indexes it (runs on an upload thread).
  core::Status upload_pack(SealedPack pack);
  void upload_loop();
  // Waits until no upload is queued or in flight.
  void wait_for_uploads();
  core::Status sticky_error() const;
  core::Result<bool> store_blob(BlobType type, const Id& id, core::ByteView plaintext, bool force);
  // Appends a sealed blob to the open pack of its type (entry's offset is
  // set here); writes the pack when it is full.
  core::Status append_to_pack(PackEntry e, core::ByteView sealed);
  core::Status write_index_locked();  // index_mu_ held
  void set_error(const core::Status& st);

  // Agent sessions seal with a data key; readers unseal agents' data keys.
  core::Bytes encode_stored(core::ByteView plaintext, bool compress) const;
  core::Result<core::Bytes> decode_stored(core::ByteView stored, bool* by_agent = nullptr);
  core::Status agent_denied(const std::string& what) const;
  void load_agent_key_pairs(const std::vector<std::pair<std::string, core::Bytes>>& key_files);
  std::unique_ptr<AgentSession> agent_;       // set: opened with an agent key
  std::shared_ptr<DataKeyOpener> opener_;     // set: the repository has agent key pairs

  std::shared_ptr<storage::Backend> backend_;
  MasterKey key_;
  Config config_;
  GearTable gear_;
  std::string key_id_;
  bool append_only_ = false;
  // Whole tree packs read from backends that prefer whole reads (S3): one
  // request serves every directory in the pack. Bounded; cleared when full.
  core::Result<core::Bytes> load_tree_blob_cached(const Id& id, const BlobLocation& loc);
  std::mutex tree_cache_mu_;
  std::unordered_map<Id, std::shared_ptr<const core::Bytes>, IdHash> tree_packs_;
  uint64_t tree_cache_bytes_ = 0;

  std::mutex loaded_mu_;
  std::unordered_set<std::string> loaded_index_files_;
  Index index_;
  Compression compression_ = Compression::kAuto;

  std::mutex known_mu_;
  std::unordered_set<Id, IdHash> pending_;  // in open or in-flight packs

  std::mutex pack_mu_;
  OpenPack open_packs_[2];  // by BlobType: data and trees go to separate packs
  std::atomic<bool> reuse_pack_buffers_{false};  // read by the upload threads
  std::vector<core::Bytes> spare_pack_buffers_;  // guarded by pack_mu_

  mutable std::mutex index_mu_;
  std::vector<PackContents> unindexed_;
  std::vector<PackContents> written_;  // every pack stored by this process
  size_t unindexed_blobs_ = 0;

  mutable std::mutex stats_mu_;
  WriteStats stats_;
  core::Status error_;  // first failure of a background write; sticky

  // The uploader (see the comment at the top).
  std::mutex upload_mu_;
  std::condition_variable upload_work_cv_;  // upload threads wait for packs (or stop)
  std::condition_variable upload_room_cv_;  // producers and flush() wait for room / idle
  std::deque<SealedPack> upload_queue_;
  size_t uploads_outstanding_ = 0;  // queued + in flight
  size_t upload_limit_ = 1;
  bool upload_stop_ = false;
  std::vector<std::thread> upload_threads_;
};

}  // namespace cairn::repo
