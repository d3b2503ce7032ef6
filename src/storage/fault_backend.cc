#include "storage/fault_backend.h"

namespace cairn::storage {

namespace {
size_t slot(FaultBackend::Op op) { return static_cast<size_t>(op); }
}  // namespace

const char* FaultBackend::op_name(Op op) {
  switch (op) {
    case Op::kSave:
      return "save";
    case Op::kLoad:
      return "load";
    case Op::kStat:
      return "stat";
    case Op::kList:
      return "list";
    case Op::kRemove:
      return "remove";
    case Op::kExists:
      return "exists";
    case Op::kCreate:
      return "create";
  }
  return "?";
}

FaultBackend::FaultBackend(std::shared_ptr<Backend> inner) : inner_(std::move(inner)) {}

void FaultBackend::fail_nth(Op op, uint64_t n, core::Code code, When when) {
  if (n == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  failures_[slot(op)][calls_[slot(op)] + n] = Failure{code, when};
}

void FaultBackend::fail_next(Op op, uint64_t count, core::Code code, When when) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t i = 1; i <= count; ++i) {
    failures_[slot(op)][calls_[slot(op)] + i] = Failure{code, when};
  }
}

void FaultBackend::flip_byte_on_load(Predicate pred, std::optional<uint64_t> index) {
  std::lock_guard<std::mutex> lock(mu_);
  mutations_.push_back(Mutation{std::move(pred), false, index.value_or(0), index.has_value()});
}

void FaultBackend::truncate_on_load(Predicate pred, uint64_t keep) {
  std::lock_guard<std::mutex> lock(mu_);
  mutations_.push_back(Mutation{std::move(pred), true, keep, false});
}

void FaultBackend::clear_faults() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& f : failures_) f.clear();
  mutations_.clear();
}

uint64_t FaultBackend::calls(Op op) const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_[slot(op)];
}

uint64_t FaultBackend::injected(Op op) const {
  std::lock_guard<std::mutex> lock(mu_);
  return injected_[slot(op)];
}

FaultBackend::Decision FaultBackend::begin(Op op, const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t call = ++calls_[slot(op)];
  auto& pending = failures_[slot(op)];
  auto it = pending.find(call);
  if (it == pending.end()) return {};
  Failure f = it->second;
  pending.erase(it);
  ++injected_[slot(op)];
  std::string message = std::string("injected fault: ") + op_name(op) + " call #" +
                        std::to_string(call) + (what.empty() ? "" : " of " + what) + " (" +
                        core::code_name(f.code) + ")";
  return Decision{f, core::Status(f.code, std::move(message))};
}

void FaultBackend::mutate(const Handle& h, core::Bytes& data) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Mutation& m : mutations_) {
    if (m.pred && !m.pred(h)) continue;
    if (m.truncate) {
      if (data.size() > m.value) data.resize(m.value);
    } else if (!data.empty()) {
      const uint64_t i = m.has_index ? m.value % data.size() : data.size() / 2;
      data[i] ^= 0xff;
    }
  }
}

core::Status FaultBackend::save(const Handle& h, core::ByteView data) {
  return save_with(h, data, SaveOptions{});
}

core::Status FaultBackend::save_with(const Handle& h, core::ByteView data,
                                     const SaveOptions& options) {
  Decision d = begin(Op::kSave, h.to_string());
  if (d.failure && d.failure->when == When::kBefore) return d.status;
  core::Status st = inner_->save_with(h, data, options);
  return d.failure ? d.status : st;
}

core::Result<core::Bytes> FaultBackend::load(const Handle& h, uint64_t offset, uint64_t length) {
  Decision d = begin(Op::kLoad, h.to_string());
  if (d.failure && d.failure->when == When::kBefore) return d.status;
  auto r = inner_->load(h, offset, length);
  if (d.failure) return d.status;
  if (r.ok()) mutate(h, r.value());
  return r;
}

core::Result<FileInfo> FaultBackend::stat(const Handle& h) {
  Decision d = begin(Op::kStat, h.to_string());
  if (d.failure && d.failure->when == When::kBefore) return d.status;
  auto r = inner_->stat(h);
  if (d.failure) return d.status;
  return r;
}

core::Status FaultBackend::list(FileType t, const std::function<void(const FileInfo&)>& fn) {
  Decision d = begin(Op::kList, type_dir(t));
  if (d.failure && d.failure->when == When::kBefore) return d.status;
  // kAfter: the caller has seen the whole listing yet hears it failed.
  core::Status st = inner_->list(t, fn);
  return d.failure ? d.status : st;
}

core::Status FaultBackend::remove(const Handle& h) {
  Decision d = begin(Op::kRemove, h.to_string());
  if (d.failure && d.failure->when == When::kBefore) return d.status;
  core::Status st = inner_->remove(h);
  return d.failure ? d.status : st;
}

core::Result<bool> FaultBackend::exists() {
  Decision d = begin(Op::kExists, "");
  if (d.failure && d.failure->when == When::kBefore) return d.status;
  auto r = inner_->exists();
  if (d.failure) return d.status;
  return r;
}

core::Status FaultBackend::create() {
  Decision d = begin(Op::kCreate, "");
  if (d.failure && d.failure->when == When::kBefore) return d.status;
  core::Status st = inner_->create();
  return d.failure ? d.status : st;
}

}  // namespace cairn::storage
