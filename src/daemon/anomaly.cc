#include "daemon/anomaly.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace cairn::daemon {

namespace {

// 1 / Phi^-1(3/4): makes the MAD of normally distributed values estimate sigma.
constexpr double kMadScale = 1.4826;

std::string human_bytes(double b) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t u = 0;
  while (std::fabs(b) >= 1024 && u + 1 < std::size(kUnits)) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.1f} {}", b, kUnits[u]);
}

std::string human_seconds(double s) { return fmt::format("{:.0f} s", s); }

}  // namespace

const char* anomaly_kind_name(AnomalyKind kind) {
  switch (kind) {
    case AnomalyKind::kSizeDrop:
      return "size drop";
    case AnomalyKind::kSizeSpike:
      return "size spike";
    case AnomalyKind::kDurationSpike:
      return "duration spike";
  }
  return "anomaly";
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  double hi = v[mid];
  if (v.size() % 2 == 1) return hi;
  double lo = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
  return (lo + hi) / 2;
}

double scaled_mad(const std::vector<double>& values, double med) {
  std::vector<double> dev;
  dev.reserve(values.size());
  for (double x : values) dev.push_back(std::fabs(x - med));
  return kMadScale * median(std::move(dev));
}

std::vector<Anomaly> detect_anomalies(const std::vector<RunSample>& history,
                                      const RunSample& current, const AnomalyOptions& o) {
  std::vector<Anomaly> out;
  size_t n = std::min(history.size(), o.window);
  if (n < o.min_history || n == 0) return out;
  std::vector<double> sizes, durations;
  for (size_t i = 0; i < n; ++i) {
    sizes.push_back(history[i].size_bytes);
    durations.push_back(history[i].duration_s);
  }

  double size_med = median(sizes);
  double size_sigma = scaled_mad(sizes, size_med);
  double size = current.size_bytes;
  double drop_bound = std::min(size_med - o.k * size_sigma, o.size_drop_ratio * size_med);
  if (size < drop_bound) {
    double pct = size_med > 0 ? 100.0 * (size_med - size) / size_med : 0;
    out.push_back({AnomalyKind::kSizeDrop, size, size_med, size_sigma, drop_bound,
                   fmt::format("size {} is {:.0f}% below the median {} of the last {} runs",
                               human_bytes(size), pct, human_bytes(size_med), n)});
  }
  double spike_bound = std::max(size_med + o.k * size_sigma, o.size_spike_ratio * size_med);
  if (size_med > 0 && size > spike_bound) {
    out.push_back(
        {AnomalyKind::kSizeSpike, size, size_med, size_sigma, spike_bound,
         fmt::format("size {} is {:.1f}x the median {} of the last {} runs", human_bytes(size),
                     size_med > 0 ? size / size_med : 0.0, human_bytes(size_med), n)});
  }

  double dur_med = median(durations);
  double dur_sigma = scaled_mad(durations, dur_med);
  double dur = current.duration_s;
  double dur_bound = std::max(
      {dur_med + o.k * dur_sigma, o.duration_ratio * dur_med, dur_med + o.duration_floor_s});
  if (dur > dur_med + o.k * dur_sigma && dur > o.duration_ratio * dur_med &&
      dur - dur_med >= o.duration_floor_s) {
    out.push_back(
        {AnomalyKind::kDurationSpike, dur, dur_med, dur_sigma, dur_bound,
         fmt::format("duration {} is {:.1f}x the median {} of the last {} runs", human_seconds(dur),
                     dur_med > 0 ? dur / dur_med : 0.0, human_seconds(dur_med), n)});
  }
  return out;
}

}  // namespace cairn::daemon
