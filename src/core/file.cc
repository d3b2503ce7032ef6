#include "core/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace cairn::core {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Status UniqueFd::close(const std::string& what) {
  int fd = release();
  if (fd < 0) return ok_status();
  // On Linux the descriptor is released even when close() reports EINTR, so
  // retrying would close an unrelated descriptor.
  if (::close(fd) != 0 && errno != EINTR) return errno_status(errno, what);
  return ok_status();
}

Result<UniqueFd> open_file(const std::string& path, int flags, mode_t mode) {
  for (;;) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd >= 0) return UniqueFd(fd);
    if (errno != EINTR) return errno_status(errno, path);
  }
}

Status write_all(int fd, ByteView data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, what);
    }
    if (n == 0) return io_error(what + ": write made no progress");
    done += static_cast<size_t>(n);
  }
  return ok_status();
}

Status pread_all(int fd, uint8_t* out, size_t size, uint64_t offset, const std::string& what) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status(errno, what);
    }
    if (n == 0) {
      return corruption(what + ": file ended at offset " + std::to_string(offset + done) +
                        ", expected " + std::to_string(size - done) + " more bytes");
    }
    done += static_cast<size_t>(n);
  }
  return ok_status();
}

Status fsync_fd(int fd, const std::string& what) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) return errno_status(errno, what);
  }
  return ok_status();
}

Status fsync_dir(const std::string& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, open_file(path, O_RDONLY | O_DIRECTORY));
  while (::fsync(fd.get()) != 0) {
    // Some filesystems cannot sync directories at all; there is nothing more to do there.
    if (errno == EINVAL || errno == ENOTSUP) break;
    if (errno != EINTR) return errno_status(errno, path);
  }
  return ok_status();
}

Result<bool> make_dir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) return true;
  if (errno != EEXIST) return errno_status(errno, path);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errno_status(errno, path);
  if (!S_ISDIR(st.st_mode)) return errno_status(ENOTDIR, path);
  return false;
}

Status make_dirs(const std::string& path, mode_t mode) {
  // Create each prefix in turn; existing components are fine.
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    if (path[pos - 1] == '/') continue;  // "a//b"
    ASSIGN_OR_RETURN(bool created, make_dir(path.substr(0, pos), mode));
    (void)created;
  }
  if (path.empty() || path.back() == '/') return ok_status();
  ASSIGN_OR_RETURN(bool created, make_dir(path, mode));
  (void)created;
  return ok_status();
}

}  // namespace cairn::core
