#include "engines/exec/exec.h"

#include <fmt/format.h>

#include "policy/duration.h"

namespace cairn::engines::exec {

const std::vector<std::string>& repository_secret_env() {
  static const std::vector<std::string> names = {
      "CAIRN_PASSWORD",    "CAIRN_PASSWORD_FILE",   "CAIRN_PASSWORD_COMMAND", "CAIRN_KEY_FILE",
      "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"};
  return names;
}

core::Result<RunningCommand> start_command(const ExecOptions& opt) {
  if (opt.command.empty() || opt.command[0].empty())
    return core::invalid_argument("no command to run");
  core::ProcessOptions po;
  po.forward_stderr = opt.forward_stderr;  // by default the command's messages stay visible
  po.new_process_group = true;
  po.env = opt.env;
  po.unset_env = repository_secret_env();
  ASSIGN_OR_RETURN(std::shared_ptr<core::Subprocess> proc,
                   core::Subprocess::start(opt.command, po));
  RunningCommand cmd;
  cmd.dog = std::make_shared<core::Watchdog>(proc, opt.timeout);
  cmd.proc = std::move(proc);
  cmd.timeout = opt.timeout;
  return cmd;
}

core::Status RunningCommand::finish() const {
  uint64_t total = proc->bytes_read();
  core::Status st = proc->wait();
  dog->disarm();
  if (dog->fired())
    return core::io_error(fmt::format("command '{}' timed out after {}: no snapshot written",
                                      proc->name(), policy::format_duration(timeout)));
  if (!st.ok()) return core::io_error("command " + st.message() + ": no snapshot written");
  if (total == 0)
    return core::io_error("command '" + proc->name() + "' produced no output: no snapshot written");
  return {};
}

core::Result<archive::StreamSource> command_source(const ExecOptions& opt) {
  ASSIGN_OR_RETURN(RunningCommand cmd, start_command(opt));
  archive::StreamSource src;
  src.filename = opt.filename;
  src.read = [proc = cmd.proc](uint8_t* buf, size_t cap) { return proc->read(buf, cap); };
  src.finish = [cmd]() { return cmd.finish(); };
  return src;
}

core::Result<archive::BackupResult> backup(repo::Repository& repo, const ExecOptions& opt,
                                           const archive::BackupOptions& backup,
                                           archive::BackupProgress* progress) {
  ASSIGN_OR_RETURN(auto src, command_source(opt));
  archive::BackupOptions o = backup;
  o.engine["type"] = "exec";
  return archive::backup_stream(repo, std::move(src), o, progress);
}

}  // namespace cairn::engines::exec
