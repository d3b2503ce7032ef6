#include "repo/log_archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>

#include "core/file.h"
#include "core/thread_pool.h"
#include "crypto/crypto.h"
#include "repo/timefmt.h"

namespace cairn::repo {

using json = nlohmann::json;
using storage::FileType;

namespace {

json entry_json(const LogEntry& e) {
  json blobs = json::array();
  for (const auto& b : e.blobs) {
    json jb = {{"id", b.id.hex()}};
    if (b.where) {
      jb["pack"] = b.where->pack.hex();
      jb["offset"] = b.where->entry.offset;
      jb["length"] = b.where->entry.length;
      jb["raw_length"] = b.where->entry.raw_length;
      jb["flags"] = b.where->entry.flags;
    }
    blobs.push_back(std::move(jb));
  }
  json j = {{"version", e.sha256.empty() ? 2 : 1},
            {"service", e.service},
            {"name", e.name},
            {"size", e.size},
            {"time", e.time},
            {"blobs", blobs}};
  if (!e.sha256.empty()) j["sha256"] = e.sha256;
  return j;
}

core::Result<LogEntry> entry_from_json(core::ByteView bytes) {
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return core::corruption("log entry is not valid JSON");
  try {
    const int version = j.at("version").get<int>();
    if (version != 1 && version != 2)
      return core::unsupported("log entry version " + j.at("version").dump());
    LogEntry e;
    e.service = j.at("service").get<std::string>();
    e.name = j.at("name").get<std::string>();
    e.size = j.at("size").get<uint64_t>();
    // Version 1 adds a SHA-256 of the whole file; version 2 relies on the
    // blob ids alone (each verified against its plaintext when read).
    if (version == 1) {
      e.sha256 = j.at("sha256").get<std::string>();
      if (e.sha256.empty()) return core::corruption("log entry version 1 without sha256");
    }
    e.time = j.value("time", "");
    for (const auto& jb : j.at("blobs")) {
      auto id = Id::from_hex(jb.at("id").get<std::string>());
      if (!id) return core::corruption("log entry has a malformed blob id");
      LogBlob b{*id, std::nullopt};
      if (jb.contains("pack")) {
        auto pack = Id::from_hex(jb.at("pack").get<std::string>());
        if (!pack) return core::corruption("log entry has a malformed pack id");
        BlobLocation loc;
        loc.pack = *pack;
        loc.entry.type = BlobType::kData;
        loc.entry.id = *id;
        loc.entry.offset = jb.at("offset").get<uint32_t>();
        loc.entry.length = jb.at("length").get<uint32_t>();
        loc.entry.raw_length = jb.at("raw_length").get<uint32_t>();
        loc.entry.flags = jb.at("flags").get<uint8_t>();
        b.where = loc;
      }
      e.blobs.push_back(std::move(b));
    }
    return e;
  } catch (const json::exception& ex) {
    return core::corruption(std::string("log entry: ") + ex.what());
  }
}

// Log files are cut into pieces of this size (the last one shorter): a
// WAL segment never shares content with another at a shifted offset, so
// content-defined chunking would buy nothing and costs a pass over the data.
constexpr size_t kLogPieceSize = 1 << 20;

// Reads up to `cap` bytes (fewer only at end of file).
core::Result<size_t> read_up_to(int fd, uint8_t* buf, size_t cap, const std::string& path) {
  size_t got = 0;
  while (got < cap) {
    ssize_t r = ::read(fd, buf + got, cap - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return core::errno_status(errno, "reading " + path);
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

// Only names PostgreSQL (and binlog) archiving produces: no path separators.
bool valid_log_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  for (char c : name) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

LogArchive::LogArchive(Repository& repo, std::string service)
    : repo_(repo), service_(std::move(service)) {}

std::string LogArchive::object_name(const std::string& name) const {
  std::string key = "log";
  key += '\0';
  key += service_;
  key += '\0';
  key += name;
  return core::hex_encode(crypto::hmac_sha256(repo_.key().mac, core::as_bytes(key)));
}

core::Result<LogEntry> LogArchive::load_entry(const std::string& object) {
  ASSIGN_OR_RETURN(core::Bytes plain, repo_.load_named_file(FileType::kWal, object));
  auto e = entry_from_json(plain);
  if (!e.ok()) return e.status().with_context("wal/" + object);
  return e;
}

core::Result<std::optional<LogEntry>> LogArchive::find(const std::string& name) {
  if (!valid_log_name(name)) return core::invalid_argument("invalid log file name '" + name + "'");
  auto e = load_entry(object_name(name));
  if (!e.ok()) {
    if (e.status().code() == core::Code::kNotFound) return std::optional<LogEntry>();
    return e.status();
  }
  // An entry moved to another name (or service) would decrypt fine: the
  // recorded name is what proves it is the one asked for.
  if (e->name != name || e->service != service_)
    return core::corruption("wal/" + object_name(name) + " holds " + e->service + "/" + e->name +
                            ", not " + service_ + "/" + name);
  return std::optional<LogEntry>(std::move(*e));
}

// A file read, cut into pieces and (unless already archived) stored as
// blobs, whose entry is not written yet.
struct LogArchive::Staged {
  LogEntry entry;
  std::string path;
  std::vector<Id> ids;
  bool identical = false;  // archived before with the same content: nothing to write
};

core::Result<bool> LogArchive::same_content(const LogEntry& e, const std::string& path) {
  ASSIGN_OR_RETURN(core::UniqueFd fd, core::open_file(path, O_RDONLY | O_CLOEXEC));
  struct stat sb;
  if (::fstat(fd.get(), &sb) != 0) return core::errno_status(errno, path);
  if (static_cast<uint64_t>(sb.st_size) != e.size) return false;
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kLogPieceSize]);
  if (!e.sha256.empty()) {  // version 1: the digest of the whole file
    crypto::Sha256 hash;
    for (;;) {
      ASSIGN_OR_RETURN(size_t n, read_up_to(fd.get(), buf.get(), kLogPieceSize, path));
      if (n == 0) break;
      hash.update(core::ByteView(buf.get(), n));
    }
    return core::hex_encode(hash.finish()) == e.sha256;
  }
  // Version 2: the blob ids, in order. A blob whose length the entry records
  // is compared by id (one HMAC, no read from the repository); any other is
  // read back and compared byte for byte.
  uint64_t offset = 0;
  for (const auto& b : e.blobs) {
    core::Bytes stored;  // the archived piece, when it has to be read back
    if (!b.where) {
      ASSIGN_OR_RETURN(stored, repo_.load_blob(b.id));
    }
    const uint64_t n = b.where ? b.where->entry.raw_length : stored.size();
    if (offset + n > e.size) return false;
    core::Bytes mine(n);
    TRY(core::pread_all(fd.get(), mine.data(), mine.size(), offset, path));
    if (b.where ? repo_.blob_id(mine) != b.id : mine != stored) return false;
    offset += n;
  }
  return offset == e.size;
}

core::Result<LogArchive::Staged> LogArchive::stage(const std::string& name,
                                                   const std::string& path) {
  ASSIGN_OR_RETURN(auto existing, find(name));
  Staged st;
  st.entry.service = service_;
  st.entry.name = name;
  st.path = path;
  if (existing) {
    ASSIGN_OR_RETURN(bool same, same_content(*existing, path));
    if (same) {
      st.identical = true;
      return st;
    }
    return core::already_exists("log file " + name + " of service '" + service_ +
                                "' is already archived with different content (" +
                                std::to_string(existing->size) + " bytes, archived " +
                                existing->time + "); refusing to replace it");
  }
  ASSIGN_OR_RETURN(core::UniqueFd fd, core::open_file(path, O_RDONLY | O_CLOEXEC));
  // The pieces are hashed (blob id), compressed and encrypted on all cores,
  // while this thread reads the next ones. A few piece buffers are reused
  // (allocated on demand, never zero-filled): fresh ones per piece cost a
  // page fault per 4 KiB, a large share of the CPU time of a push.
  const size_t threads = std::max(2u, std::thread::hardware_concurrency());
  const size_t max_buffers = threads + 2;
  std::vector<std::unique_ptr<uint8_t[]>> buffers;
  std::vector<uint8_t*> free_buffers;
  std::mutex mu;
  std::condition_variable freed;
  core::Status first_error;
  std::deque<Id> ids;  // stable slots the tasks fill in
  uint64_t size = 0;
  {
    // Declared after what its tasks use: destroyed (drained) first.
    core::ThreadPool pool(threads, max_buffers);
    for (;;) {
      uint8_t* buf = nullptr;
      {
        std::unique_lock lock(mu);
        if (free_buffers.empty() && buffers.size() < max_buffers) {
          buffers.emplace_back(new uint8_t[kLogPieceSize]);
          free_buffers.push_back(buffers.back().get());
        }
        freed.wait(lock, [&] { return !free_buffers.empty(); });
        if (!first_error.ok()) break;
        buf = free_buffers.back();
        free_buffers.pop_back();
      }
      auto n = read_up_to(fd.get(), buf, kLogPieceSize, path);
      if (!n.ok() || *n == 0) {
        std::lock_guard lock(mu);
        if (!n.ok() && first_error.ok()) first_error = n.status();
        free_buffers.push_back(buf);
        break;
      }
      size += *n;
      Id* slot = &ids.emplace_back();
      pool.submit([&, buf, len = *n, slot] {
        core::ByteView piece(buf, len);
        *slot = repo_.blob_id(piece);
        core::Status saved = repo_.save_blob(BlobType::kData, *slot, piece).status();
        std::lock_guard lock(mu);
        if (!saved.ok() && first_error.ok()) first_error = saved;
        free_buffers.push_back(buf);
        freed.notify_one();
      });
      if (*n < kLogPieceSize) break;  // end of file
    }
    pool.wait_idle();
  }
  TRY(first_error);
  st.entry.size = size;
  st.ids.assign(ids.begin(), ids.end());
  return st;
}

// Writes the entry of a staged file; its blobs must be flushed already.
core::Result<bool> LogArchive::commit(Staged& st,
                                      const std::unordered_map<Id, BlobLocation, IdHash>& where) {
  if (st.identical) return false;
  LogEntry& e = st.entry;
  for (const auto& id : st.ids) {
    auto it = where.find(id);
    e.blobs.push_back(LogBlob{id, it == where.end() ? std::nullopt : std::optional(it->second)});
  }
  e.time = format_time(now_time());
  std::string text = entry_json(e).dump();
  core::Status saved =
      repo_.save_named_file(FileType::kWal, object_name(e.name), core::as_bytes(text));
  if (saved.code() == core::Code::kAlreadyExists) {
    // A concurrent push of the same name won: fine if it stored the same file.
    ASSIGN_OR_RETURN(auto other, find(e.name));
    if (other) {
      ASSIGN_OR_RETURN(bool same, same_content(*other, st.path));
      if (same) return false;
    }
    return core::already_exists("log file " + e.name + " of service '" + service_ +
                                "' was archived concurrently with different content");
  }
  TRY(saved);
  return true;
}

std::unordered_map<Id, BlobLocation, IdHash> LogArchive::written_locations() const {
  std::unordered_map<Id, BlobLocation, IdHash> where;
  for (const auto& pack : repo_.written_packs())
    for (const auto& b : pack.blobs) where[b.id] = BlobLocation{pack.pack, b};
  return where;
}

core::Result<bool> LogArchive::push(const std::string& name, const std::string& path) {
  ASSIGN_OR_RETURN(Staged st, stage(name, path));
  if (st.identical) return false;
  TRY(repo_.flush());
  return commit(st, written_locations());
}

std::vector<core::Result<bool>> LogArchive::push_batch(
    const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<core::Result<Staged>> staged;
  for (const auto& [name, path] : files) staged.push_back(stage(name, path));
  // One flush for the whole batch: its packs, then one index file.
  core::Status flushed = repo_.flush();
  auto where = written_locations();
  std::vector<core::Result<bool>> out;
  for (auto& st : staged) {
    if (!st.ok()) {
      out.push_back(st.status());
    } else if (!flushed.ok()) {
      out.push_back(flushed);
    } else {
      out.push_back(commit(*st, where));
    }
  }
  return out;
}

core::Status LogArchive::fetch(const std::string& name, const std::string& dest) {
  ASSIGN_OR_RETURN(auto entry, find(name));
  if (!entry)
    return core::not_found("log file " + name + " of service '" + service_ + "' is not archived");
  const std::string tmp = dest + ".cairn-tmp";
  ASSIGN_OR_RETURN(core::UniqueFd fd,
                   core::open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  // Every blob is checked against its id as it is opened; the entry (itself
  // authenticated) lists the ids in order, so the ids and the size prove the
  // whole file. Version-1 entries also carry a SHA-256 of it.
  crypto::Sha256 hash;
  const bool whole_digest = !entry->sha256.empty();
  uint64_t size = 0;
  auto fail = [&](core::Status st) {
    ::unlink(tmp.c_str());
    return st;
  };
  for (const auto& b : entry->blobs) {
    core::Result<core::Bytes> data = core::not_found("");
    if (b.where) data = repo_.load_blob_at(b.id, *b.where);
    if (!b.where || data.status().code() == core::Code::kNotFound) data = repo_.load_blob(b.id);
    if (!data.ok()) return fail(data.status().with_context("log file " + name));
    if (whole_digest) hash.update(*data);
    size += data->size();
    if (auto st = core::write_all(fd.get(), *data, tmp); !st.ok()) return fail(st);
  }
  if (size != entry->size || (whole_digest && core::hex_encode(hash.finish()) != entry->sha256))
    return fail(core::corruption("log file " + name + " of service '" + service_ +
                                 "' does not match its recorded digest (damaged archive)"));
  if (auto st = core::fsync_fd(fd.get(), tmp); !st.ok()) return fail(st);
  if (auto st = fd.close(tmp); !st.ok()) return fail(st);
  if (::rename(tmp.c_str(), dest.c_str()) != 0)
    return fail(core::errno_status(errno, "rename to " + dest));
  return {};
}

core::Result<std::vector<LogEntry>> list_all_log_entries(Repository& repo,
                                                         std::vector<std::string>* problems) {
  std::vector<std::string> names;
  TRY(repo.backend().list(FileType::kWal,
                          [&](const storage::FileInfo& fi) { names.push_back(fi.name); }));
  std::vector<LogEntry> out;
  for (const auto& n : names) {
    auto plain = repo.load_named_file(FileType::kWal, n);
    core::Result<LogEntry> e =
        plain.ok() ? entry_from_json(*plain) : core::Result<LogEntry>(plain.status());
    if (!e.ok()) {
      if (e.status().code() == core::Code::kNotFound) continue;  // removed while listing
      if (!problems) return e.status().with_context("wal/" + n);
      problems->push_back("wal/" + n + ": " + e.status().message());
      continue;
    }
    out.push_back(std::move(*e));
  }
  return out;
}

core::Result<std::vector<LogEntry>> LogArchive::list(std::vector<std::string>* problems) {
  ASSIGN_OR_RETURN(auto all, list_all_log_entries(repo_, problems));
  std::vector<LogEntry> out;
  for (auto& e : all)
    if (e.service == service_) out.push_back(std::move(e));
  std::sort(out.begin(), out.end(),
            [](const LogEntry& a, const LogEntry& b) { return a.name < b.name; });
  return out;
}

core::Status LogArchive::remove(const std::string& name) {
  if (!valid_log_name(name)) return core::invalid_argument("invalid log file name '" + name + "'");
  TRY(repo_.require_full_key("remove archived log files"));
  return repo_.backend().remove({FileType::kWal, object_name(name)});
}

}  // namespace cairn::repo
