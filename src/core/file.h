// Small POSIX file helpers: UniqueFd (an owning file descriptor) and loops that
// turn EINTR and short reads/writes into complete operations or a Status
// naming the path. Every open adds O_CLOEXEC so descriptors never leak into
// child processes. UniqueFd is a value type (not thread-safe per instance);
// the free functions are thread-safe.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/bytes.h"
#include "core/status.h"

namespace cairn::core {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the current descriptor (ignoring errors) and takes ownership of fd.
  void reset(int fd = -1);
  // Closes now and reports failure: close() can surface delayed write errors
  // (NFS, quota), which matter when the file was written.
  Status close(const std::string& what);

 private:
  int fd_ = -1;
};

// open(2) with O_CLOEXEC added, retrying EINTR. Errors name `path`.
Result<UniqueFd> open_file(const std::string& path, int flags, mode_t mode = 0);
// Writes all of data, looping on short writes.
Status write_all(int fd, ByteView data, const std::string& what);
// Reads exactly size bytes at offset; hitting end-of-file first is kCorruption
// (callers checked the size beforehand, so the file shrank under us).
Status pread_all(int fd, uint8_t* out, size_t size, uint64_t offset, const std::string& what);
Status fsync_fd(int fd, const std::string& what);
// Makes a directory's entries (created/renamed/removed names) durable.
Status fsync_dir(const std::string& path);
// mkdir(2) treating an existing entry as success (safe against concurrent
// creators). Returns true when this call created the directory.
Result<bool> make_dir(const std::string& path, mode_t mode);
// mkdir -p: creates every missing component of path.
Status make_dirs(const std::string& path, mode_t mode);

}  // namespace cairn::core
