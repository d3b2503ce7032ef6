// FaultBackend: a decorator that forwards to another Backend and injects
// programmed faults, for testing retry, error and corruption handling:
// - fail the Nth call of an operation with a chosen code, either before the
//   inner call (nothing happened) or after it (the operation happened but the
//   caller is told it failed, like a lost response);
// - flip a byte of, or truncate, data returned by load() for matching handles;
// - count calls per operation.
// Thread-safe. Predicates run under the internal lock and must not call back
// into the FaultBackend.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "storage/backend.h"

namespace cairn::storage {

class FaultBackend : public Backend {
 public:
  enum class Op { kSave, kLoad, kStat, kList, kRemove, kExists, kCreate };
  static constexpr size_t kOpCount = 7;
  static const char* op_name(Op op);

  // Whether an injected failure replaces the inner call or follows it.
  enum class When { kBefore, kAfter };
  using Predicate = std::function<bool(const Handle&)>;

  explicit FaultBackend(std::shared_ptr<Backend> inner);

  // The nth call of op from now on (n = 1: the next one) fails with code.
  void fail_nth(Op op, uint64_t n, core::Code code, When when = When::kBefore);
  // The next count calls of op fail with code.
  void fail_next(Op op, uint64_t count, core::Code code, When when = When::kBefore);
  // Data returned by load() for handles matching pred (null: all) gets one
  // byte inverted, at index % size (default: the middle). Empty data is left alone.
  void flip_byte_on_load(Predicate pred, std::optional<uint64_t> index = std::nullopt);
  // Data returned by load() for handles matching pred (null: all) is cut to at most keep bytes.
  void truncate_on_load(Predicate pred, uint64_t keep);
  // Drops every programmed failure and load mutation; counters keep counting.
  void clear_faults();

  // Calls of op so far, including failed ones.
  uint64_t calls(Op op) const;
  // Failures injected into op so far.
  uint64_t injected(Op op) const;
  Backend& inner() { return *inner_; }

  core::Status save(const Handle& h, core::ByteView data) override;
  // Counts and fails like save(); forwards the options.
  core::Status save_with(const Handle& h, core::ByteView data, const SaveOptions& options) override;
  core::Result<core::Bytes> load(const Handle& h, uint64_t offset = 0,
                                 uint64_t length = 0) override;
  core::Result<FileInfo> stat(const Handle& h) override;
  core::Status list(FileType t, const std::function<void(const FileInfo&)>& fn) override;
  core::Status remove(const Handle& h) override;
  core::Result<bool> exists() override;
  core::Status create() override;
  std::string location() const override { return inner_->location(); }
  core::Status create_container() override { return inner_->create_container(); }
  bool prefers_whole_reads() const override { return inner_->prefers_whole_reads(); }
  int preferred_upload_concurrency() const override {
    return inner_->preferred_upload_concurrency();
  }

 private:
  struct Failure {
    core::Code code;
    When when;
  };
  struct Mutation {
    Predicate pred;
    bool truncate;   // else flip
    uint64_t value;  // keep (truncate) or index (flip)
    bool has_index;  // flip: value is meaningful
  };
  struct Decision {
    std::optional<Failure> failure;
    core::Status status;  // the error to return when failure is set
  };

  // Counts the call and pops the failure programmed for it, if any.
  Decision begin(Op op, const std::string& what);
  void mutate(const Handle& h, core::Bytes& data);

  const std::shared_ptr<Backend> inner_;
  mutable std::mutex mu_;
  std::array<uint64_t, kOpCount> calls_{};
  std::array<uint64_t, kOpCount> injected_{};
  std::array<std::map<uint64_t, Failure>, kOpCount> failures_;  // keyed by call number
  std::vector<Mutation> mutations_;
};

}  // namespace cairn::storage
