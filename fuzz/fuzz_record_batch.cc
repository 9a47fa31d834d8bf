// libFuzzer target: arbitrary bytes as a record batch (v2).
//
// Properties checked beyond "no crash, no leak, no UB, bounded memory":
//  - validate_batch accepting an uncompressed batch implies decode_records accepts it too and
//    yields exactly records_count records (both walk the records by the same rules);
//  - decode_records never leaves partial output on failure.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "protocol/record_batch.h"

using namespace varve::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  record_batch_header h;
  batch_error e = validate_batch(in, &h);
  (void)batch_error_name(e);

  std::vector<record> out;
  // A small bound keeps each run fast; bombs must fail without allocating past it.
  bool decoded = decode_records(in, &out, 1u << 20);
  if (!decoded && !out.empty()) abort();
  if (e == batch_error::none) {
    if (h.total_size() > size) abort();
    if (h.compression() == compression_type::none) {
      if (!decoded) abort();
      if (out.size() != static_cast<size_t>(h.records_count)) abort();
    }
    (void)h.last_sequence();
    (void)compute_batch_crc(in);
  }
  return 0;
}
