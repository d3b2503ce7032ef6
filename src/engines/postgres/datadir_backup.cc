// A physical base backup read straight from the data directory, as
// pgBackRest does: pg_backup_start(), the archiver walks the directory with
// many reads in flight (no copy through a walsender and a pg_basebackup
// pipe), pg_backup_stop(), then backup_label, the WAL from the start to the
// stop segment, and a backup_manifest are added. The session that started the
// backup stays open throughout: if cairn dies, the server ends the backup.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>

#include "core/bytes.h"
#include "core/file.h"
#include "crypto/crypto.h"
#include "engines/postgres/base_backup.h"
#include "repo/timefmt.h"

namespace cairn::engines::postgres {

using json = nlohmann::json;

namespace {

// What pg_basebackup leaves out (PostgreSQL 15's basebackup.c): contents
// recreated at start-up, files of a running server, files of an earlier
// backup, temporary files and relations. pg_wal is added after the stop.
const std::vector<std::string>& excluded_paths() {
  static const std::vector<std::string> list = {"/pg_wal",
                                                "/pg_stat_tmp/*",
                                                "/pg_replslot/*",
                                                "/pg_dynshmem/*",
                                                "/pg_notify/*",
                                                "/pg_serial/*",
                                                "/pg_snapshots/*",
                                                "/pg_subtrans/*",
                                                "/postmaster.pid",
                                                "/postmaster.opts",
                                                "/backup_label",
                                                "/tablespace_map",
                                                "/backup_manifest",
                                                "/postgresql.auto.conf.tmp",
                                                "/current_logfiles.tmp",
                                                "pg_internal.init*",
                                                "pgsql_tmp*",
                                                "/base/*/t[0-9]*_[0-9]*"};
  return list;
}

// Unlogged relations are reset from their init fork at the end of recovery,
// so (like pg_basebackup) only that fork is copied: patterns for the other
// forks of every relation in base/<db>/ that has a "<relfilenode>_init".
std::vector<std::string> unlogged_forks(const std::string& data_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& db : std::filesystem::directory_iterator(data_dir + "/base", ec)) {
    std::string db_name = db.path().filename().string();
    std::error_code ec2;
    for (const auto& f : std::filesystem::directory_iterator(db.path(), ec2)) {
      std::string name = f.path().filename().string();
      if (!name.ends_with("_init")) continue;
      std::string rel = name.substr(0, name.size() - 5);
      if (rel.empty() || !std::all_of(rel.begin(), rel.end(), ::isdigit)) continue;
      std::string p = "/base/" + db_name + "/" + rel;
      for (const char* suffix : {"", ".*", "_fsm", "_fsm.*", "_vm", "_vm.*"})
        out.push_back(p + suffix);
    }
  }
  return out;
}

std::string gmt(int64_t unix_ns) {
  time_t t = static_cast<time_t>(unix_ns / 1'000'000'000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S GMT", &tm);
  return buf;
}

// Files of the backup as the manifest lists them (collected from the
// archiver's reader threads).
class FileList {
 public:
  void add(const std::string& path, uint64_t size, int64_t mtime_ns) {
    std::lock_guard lock(mu_);
    files_.push_back({path, size, mtime_ns});
  }
  // PostgreSQL's backup manifest, version 1, without file checksums.
  std::string manifest(uint32_t timeline, const std::string& start_lsn,
                       const std::string& stop_lsn) const {
    std::lock_guard lock(mu_);
    std::string m = "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [";
    bool first = true;
    for (const auto& f : files_) {
      m += first ? "\n" : ",\n";
      first = false;
      // Names that are not plain ASCII go hex-encoded, as PostgreSQL writes them.
      bool plain = std::all_of(f.path.begin(), f.path.end(),
                               [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; });
      m += plain ? "{ \"Path\": \"" + f.path + "\""
                 : "{ \"Encoded-Path\": \"" + core::hex_encode(core::as_bytes(f.path)) + "\"";
      m += ", \"Size\": " + std::to_string(f.size) + ", \"Last-Modified\": \"" + gmt(f.mtime_ns) +
           "\" }";
    }
    m += " ],\n\"WAL-Ranges\": [\n{ \"Timeline\": " + std::to_string(timeline) +
         ", \"Start-LSN\": \"" + start_lsn + "\", \"End-LSN\": \"" + stop_lsn + "\" }\n],\n";
    // The checksum covers everything up to and including the newline before it.
    m +=
        "\"Manifest-Checksum\": \"" + core::hex_encode(crypto::sha256(core::as_bytes(m))) + "\"}\n";
    return m;
  }

 private:
  struct File {
    std::string path;
    uint64_t size;
    int64_t mtime_ns;
  };
  mutable std::mutex mu_;
  std::vector<File> files_;
};

// A small file whose content is `text` (backup_label, backup_manifest).
archive::StreamEntry text_entry(const std::string& path, std::shared_ptr<std::string> text,
                                int64_t mtime_ns) {
  archive::StreamEntry e;
  e.path = path;
  e.mode = 0600;
  e.mtime_ns = mtime_ns;
  auto pos = std::make_shared<size_t>(0);
  e.read = [text, pos](uint8_t* b, size_t n) -> core::Result<size_t> {
    size_t k = std::min(n, text->size() - *pos);
    std::copy_n(text->data() + *pos, k, b);
    *pos += k;
    return k;
  };
  return e;
}

// The entries added once the walk has ended: pg_backup_stop() on the first
// call, then backup_label, pg_wal/ with the segments from the start to the
// stop segment, and backup_manifest.
class StopEntries {
 public:
  StopEntries(PgConn& conn, std::string data_dir, uint64_t segment_size,
              std::shared_ptr<FileList> files)
      : conn_(conn), dir_(std::move(data_dir)), seg_size_(segment_size), files_(std::move(files)) {
    struct stat st;
    if (::stat(dir_.c_str(), &st) == 0) owner_ = {st.st_uid, st.st_gid};
  }

  // Owned like the data directory: the restored server must be able to
  // write pg_wal even when cairn ran as root.
  core::Result<std::optional<archive::StreamEntry>> next() {
    ASSIGN_OR_RETURN(auto e, next_entry());
    if (e && owner_) {
      e->uid = owner_->first;
      e->gid = owner_->second;
    }
    return e;
  }

  core::Status finish_entries() {
    TRY(check_segment());
    if (step_ != 5) return core::io_error("the base backup ended before its WAL was stored");
    return {};
  }

  json metadata() const {
    json j = meta_;
    j["stop_lsn"] = stop_lsn_;
    j["manifest"] = true;
    j["stop_time"] = repo::format_time(repo::now_time());
    return j;
  }

 private:
  core::Result<std::optional<archive::StreamEntry>> next_entry() {
    using Out = std::optional<archive::StreamEntry>;
    if (step_ == 0) {
      TRY(stop());
      step_++;
      int64_t now = repo::now_time().unix_ns;
      files_->add("backup_label", label_->size(), now);
      return Out(text_entry("backup_label", label_, now));
    }
    if (step_ == 1) {
      step_++;
      return Out(dir_entry("pg_wal"));
    }
    if (step_ == 2) {
      step_++;
      return Out(dir_entry("pg_wal/archive_status"));
    }
    if (step_ == 3) {
      TRY(check_segment());
      if (next_seg_ <= stop_seg_) {
        ASSIGN_OR_RETURN(archive::StreamEntry e, segment_entry(next_seg_++));
        return Out(std::move(e));
      }
      step_++;
    }
    if (step_ == 4) {
      step_++;
      auto text = std::make_shared<std::string>(
          files_->manifest(timeline_, meta_.value("start_lsn", ""), stop_lsn_));
      return Out(text_entry("backup_manifest", text, repo::now_time().unix_ns));
    }
    return Out();
  }

  core::Status stop() {
    std::string sql = conn_.server_version_num() >= 150000
                          ? "SELECT lsn, labelfile, spcmapfile FROM pg_backup_stop(false)"
                          : "SELECT lsn, labelfile, spcmapfile FROM pg_stop_backup(false, false)";
    ASSIGN_OR_RETURN(auto rows, conn_.query(sql));
    if (rows.empty() || rows[0].size() < 3)
      return core::io_error("pg_backup_stop() returned nothing");
    stop_lsn_ = rows[0][0];
    label_ = std::make_shared<std::string>(rows[0][1]);
    if (!rows[0][2].empty())
      return core::io_error("a tablespace was created during the base backup: physical "
                            "backups support only the data directory (use the logical mode)");
    meta_ = label_metadata(*label_);
    timeline_ = meta_.value("timeline", 0u);
    auto stop = parse_lsn(stop_lsn_);
    auto start = parse_segment_name(meta_.value("start_wal_file", ""), per_id());
    if (!stop || *stop == 0 || !start || timeline_ == 0)
      return core::io_error("cannot read the WAL range of the backup from backup_label (" +
                            meta_.dump() + ") and stop LSN '" + stop_lsn_ + "'");
    next_seg_ = start->segno;
    stop_seg_ = (*stop - 1) / seg_size_;  // the segment that holds the end-of-backup record
    return {};
  }

  uint64_t per_id() const { return 0x100000000ull / seg_size_; }

  archive::StreamEntry dir_entry(const std::string& path) const {
    archive::StreamEntry e;
    e.path = path;
    e.type = repo::NodeType::kDir;
    e.mode = 0700;
    return e;
  }

  // One WAL segment, read from pg_wal; the temporary replication slot (or
  // wal_keep_size) keeps the server from recycling it first.
  core::Result<archive::StreamEntry> segment_entry(uint64_t segno) {
    std::string name = segment_file_name(timeline_, segno, per_id());
    std::string path = dir_ + "/pg_wal/" + name;
    auto fd = core::open_file(path, O_RDONLY);
    if (!fd.ok())
      return core::not_found("WAL segment " + name + " needed by the base backup is gone from " +
                             dir_ + "/pg_wal (" + fd.status().message() +
                             "): allow a replication slot or raise wal_keep_size");
    current_ = std::make_shared<core::UniqueFd>(std::move(*fd));
    current_name_ = name;
    current_bytes_ = 0;
    archive::StreamEntry e;
    e.path = "pg_wal/" + name;
    e.mode = 0600;
    e.mtime_ns = repo::now_time().unix_ns;
    auto f = current_;
    e.read = [this, f](uint8_t* b, size_t n) -> core::Result<size_t> {
      size_t want = static_cast<size_t>(std::min<uint64_t>(n, seg_size_ - current_bytes_));
      for (;;) {
        ssize_t r = ::read(f->get(), b, want);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return core::errno_status(errno, "reading WAL segment " + current_name_);
        current_bytes_ += static_cast<uint64_t>(r);
        return static_cast<size_t>(r);
      }
    };
    return e;
  }

  // The segment just stored was whole.
  core::Status check_segment() {
    if (current_ && current_bytes_ != seg_size_)
      return core::io_error("WAL segment " + current_name_ + " is " +
                            std::to_string(current_bytes_) + " bytes, expected " +
                            std::to_string(seg_size_));
    current_.reset();
    return {};
  }

  PgConn& conn_;
  std::string dir_;
  uint64_t seg_size_;
  std::shared_ptr<FileList> files_;
  std::optional<std::pair<uid_t, gid_t>> owner_;
  int step_ = 0;
  std::shared_ptr<std::string> label_;
  std::string stop_lsn_;
  json meta_;
  uint32_t timeline_ = 0;
  uint64_t next_seg_ = 0, stop_seg_ = 0;
  std::shared_ptr<core::UniqueFd> current_;
  std::string current_name_;
  uint64_t current_bytes_ = 0;
};

}  // namespace

core::Result<std::string> local_data_directory(PgConn& conn) {
  ASSIGN_OR_RETURN(std::string standby, conn.value("SELECT pg_is_in_recovery()"));
  if (standby == "t") return core::unsupported("the server is a standby");
  auto dir = conn.value("SHOW data_directory");
  if (!dir.ok())
    return core::unsupported(
        "the server does not tell its data_directory to this role "
        "(needs superuser or pg_read_all_settings)");
  ASSIGN_OR_RETURN(std::string id,
                   conn.value("SELECT system_identifier::text FROM pg_control_system()"));
  auto fd = core::open_file(*dir + "/global/pg_control", O_RDONLY);
  if (!fd.ok())
    return core::unsupported("its data directory is not readable here: " + fd.status().message());
  // ControlFileData starts with the 64-bit system identifier (native byte order).
  uint64_t on_disk = 0;
  if (!core::pread_all(fd->get(), reinterpret_cast<uint8_t*>(&on_disk), sizeof on_disk, 0,
                       "pg_control")
           .ok() ||
      std::to_string(on_disk) != id)
    return core::unsupported(*dir + " on this host belongs to another cluster");
  return *dir;
}

core::Result<archive::BackupResult> datadir_backup(repo::Repository& repo, PgConn& conn,
                                                   const std::string& data_dir,
                                                   const PhysicalOptions& opt,
                                                   archive::BackupOptions backup,
                                                   archive::BackupProgress* progress) {
  ASSIGN_OR_RETURN(std::string seg,
                   conn.value("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"));
  uint64_t seg_size = std::strtoull(seg.c_str(), nullptr, 10);
  if (seg_size < (1u << 20) || (seg_size & (seg_size - 1)) != 0)
    return core::io_error("unexpected wal_segment_size '" + seg + "'");
  // A temporary slot holds the WAL from here on until this session ends, so
  // no segment the backup needs is recycled before it is copied. Without the
  // privilege (REPLICATION) the backup goes on and relies on wal_keep_size.
  std::string slot = "cairn_" + std::to_string(getpid()) + "_" + std::to_string(time(nullptr));
  auto slotted =
      conn.query("SELECT pg_create_physical_replication_slot('" + slot + "', true, true)");
  std::string label = quote_literal("cairn base backup");
  std::string fast = opt.fast_checkpoint ? "true" : "false";
  auto started = conn.query(conn.server_version_num() >= 150000
                                ? "SELECT pg_backup_start(" + label + ", " + fast + ")"
                                : "SELECT pg_start_backup(" + label + ", " + fast + ", false)");
  // Nothing has happened yet: kUnsupported lets "auto" stream instead (a
  // role with REPLICATION but no EXECUTE on pg_backup_start).
  if (!started.ok()) {
    if (slotted.ok()) (void)conn.query("SELECT pg_drop_replication_slot('" + slot + "')");
    return core::unsupported(started.status().message());
  }

  auto files = std::make_shared<FileList>();
  backup.redirects = {{"/", data_dir}};
  backup.excludes = excluded_paths();
  for (auto& p : unlogged_forks(data_dir)) backup.excludes.push_back(std::move(p));
  backup.force = true;  // page changes within one mtime tick must never be missed
  backup.parent.reset();
  backup.vanished_ok = true;
  backup.fixed_chunk = [](const std::string& path) {
    return is_relation_path(path.substr(1)) ? kRelationChunk : size_t{0};
  };
  backup.on_file = [files](const std::string& path, const repo::Node& n) {
    files->add(path.substr(1), n.size, n.mtime_ns);
  };
  backup.engine["data_directory"] = data_dir;
  auto stop = std::make_shared<StopEntries>(conn, data_dir, seg_size, files);
  archive::EntrySource extra;
  extra.next = [stop] { return stop->next(); };
  extra.finish = [stop] { return stop->finish_entries(); };
  extra.engine = [stop] { return stop->metadata(); };
  auto r = archive::backup_paths_then_entries(repo, {"/"}, std::move(extra), backup, progress);
  if (r.ok() && !slotted.ok())
    r->notices.push_back("no replication slot held the WAL during the backup (" +
                         slotted.status().message() + ")");
  return r;
}

}  // namespace cairn::engines::postgres
