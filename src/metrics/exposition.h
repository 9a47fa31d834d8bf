#pragma once
// metrics::exposition — builds a scrape in the Prometheus text exposition format 0.0.4.
//
// Metrics are grouped into families (one name, one TYPE, one HELP); samples of a family
// are written together in the order they were added, whatever order callers add them in,
// because the format requires a family's samples to be contiguous. Label values are
// escaped (\\, \", \n); names are the caller's responsibility ([a-zA-Z_:][a-zA-Z0-9_:]*,
// checked by valid_name() in debug builds).
//
// Not thread-safe: one exposition is built by one scrape on one thread.
#include <cstdint>
#include <initializer_list>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace varve::metrics {

enum class metric_type { counter, gauge, histogram };

using label = std::pair<std::string_view, std::string_view>;

class exposition {
 public:
  // Declares a family; declaring the same name again returns the existing one (the type
  // must match). A family with no samples is still written (HELP and TYPE only).
  void declare(std::string_view name, metric_type type, std::string_view help);

  // One sample of a counter or gauge family declared before.
  void add(std::string_view name, std::initializer_list<label> labels, double value);
  void add(std::string_view name, std::span<const label> labels, double value);

  // One histogram: `bounds` are the finite upper bounds (ascending), `counts` has
  // bounds.size() + 1 entries (the last is the +Inf bucket) and is NOT cumulative — the
  // writer accumulates. `sum` is the sum of observed values.
  void add_histogram(std::string_view name, std::span<const label> labels,
                     std::span<const double> bounds, std::span<const uint64_t> counts,
                     double sum);

  // The whole scrape, families in declaration order.
  std::string str() const;

  static bool valid_name(std::string_view name);
  // Escapes a label value for the text format.
  static std::string escape(std::string_view value);
  // Formats a sample value: integers without a fraction, otherwise shortest round-trip.
  static std::string format_value(double v);

 private:
  struct family {
    std::string name;
    metric_type type;
    std::string help;
    std::string samples;  // rendered sample lines
  };
  family& find(std::string_view name);
  static void append_labels(std::string& out, std::span<const label> labels,
                            std::string_view extra_name = {}, std::string_view extra_value = {});

  std::vector<family> families_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace varve::metrics
