// Anomaly detection over a service's recent successful runs: a backup whose
// size or duration is far outside its own history (a dump suddenly 90%
// smaller usually means a broken dump, not a smaller database).
//
// Robust statistics: the median of the last `window` runs and the median
// absolute deviation (MAD), scaled by 1.4826 so that it estimates the standard
// deviation of normal noise (sigma = 1.4826 * MAD). A run is flagged only when
// BOTH a statistical and a relative rule hold, so a perfectly steady history
// (MAD = 0) does not turn 1% noise into an alert:
//
//   size drop       size < median - k * sigma   and  size < drop_ratio * median   (0.5)
//   size spike      size > median + k * sigma   and  size > spike_ratio * median  (2.0)
//   duration spike  dur  > median + k * sigma   and  dur  > duration_ratio * median (2.0)
//                   and  dur - median >= duration_floor_s (60 s), so 1 s -> 3 s
//                   jitter on tiny jobs stays quiet
//
// with k = 3. A median size of 0 (empty dumps) disables the size rules. Fewer than `min_history`
// (5) past runs: no verdict (empty). docs/alerts.md repeats these rules.
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace cairn::daemon {

struct RunSample {
  double size_bytes = 0;  // total size of the snapshot / dump
  double duration_s = 0;
};

struct AnomalyOptions {
  size_t window = 10;      // past runs considered (the newest ones)
  size_t min_history = 5;  // fewer: no verdict
  double k = 3.0;          // scaled-MAD multiples
  double size_drop_ratio = 0.5;
  double size_spike_ratio = 2.0;
  double duration_ratio = 2.0;
  double duration_floor_s = 60.0;
};

enum class AnomalyKind { kSizeDrop, kSizeSpike, kDurationSpike };
const char* anomaly_kind_name(AnomalyKind kind);  // "size drop", "size spike", "duration spike"

struct Anomaly {
  AnomalyKind kind = AnomalyKind::kSizeDrop;
  double value = 0;      // the new run's size or duration
  double median = 0;     // of the history
  double sigma = 0;      // 1.4826 * MAD of the history
  double threshold = 0;  // the bound the value crossed (the stricter of both rules)
  std::string message;   // "size 10.0 MiB is 90% below the median 100.0 MiB of the last 10 runs"
};

// `history`: the service's past successful runs, newest first (as
// StateStore::recent_runs returns them); only the first `window` are used.
std::vector<Anomaly> detect_anomalies(const std::vector<RunSample>& history,
                                      const RunSample& current, const AnomalyOptions& options = {});

// Exposed for tests. median() of an empty vector is 0.
double median(std::vector<double> values);
double scaled_mad(const std::vector<double>& values, double median);

}  // namespace cairn::daemon
