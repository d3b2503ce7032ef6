#include "core/status.h"

#include <cerrno>
#include <cstring>

namespace cairn::core {

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kCorruption: return "corruption";
    case Code::kIOError: return "I/O error";
    case Code::kTransient: return "transient error";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kUnsupported: return "unsupported";
    case Code::kCancelled: return "cancelled";
    case Code::kWrongPassword: return "wrong password";
    case Code::kLocked: return "locked";
    case Code::kNoSpace: return "no space left";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return message_;
}

Status Status::with_context(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

Status errno_status(int err, const std::string& what) {
  std::string msg = what + ": " + std::strerror(err);
  switch (err) {
    case ENOENT: return Status(Code::kNotFound, msg);
    case EEXIST: return Status(Code::kAlreadyExists, msg);
    case EACCES:
    case EPERM: return Status(Code::kPermissionDenied, msg);
    case ENOSPC:
    case EDQUOT: return Status(Code::kNoSpace, msg);
    case EINTR:
    case EAGAIN: return Status(Code::kTransient, msg);
    default: return Status(Code::kIOError, msg);
  }
}

}  // namespace cairn::core
