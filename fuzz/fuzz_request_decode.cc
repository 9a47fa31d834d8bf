// libFuzzer target: arbitrary bytes as one request frame body (what follows the int32 size
// prefix): request header, then the body of the API and version the header names.
//
// Every API defined in src/protocol/messages/*.msg is covered (the list is generated into
// fuzz_apis.inc by fuzz/CMakeLists.txt). Properties checked beyond "no crash, no leak, no UB":
//  - a body that decodes re-encodes without the writer failing, and the re-encoded bytes
//    decode again, consuming exactly what was written, to an equal value;
//  - the generated API list (fuzz_apis.inc) covers every row of all_apis();
//  - produce requests: each partition's records go through validate_batch/decode_records.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "protocol/messages.h"
#include "protocol/record_batch.h"
#include "protocol/wire.h"

using namespace varve::protocol;

namespace {

int16_t peek_int16(const uint8_t* p) { return static_cast<int16_t>((p[0] << 8) | p[1]); }

void check_records(const records& r) {
  if (r.is_null() || !r.is_contiguous()) return;
  std::span<const uint8_t> bytes = r.contiguous();
  // A produce payload may hold several batches back to back.
  while (!bytes.empty()) {
    record_batch_header h;
    if (validate_batch(bytes, &h) != batch_error::none) break;
    std::vector<record> out;
    (void)decode_records(bytes.first(h.total_size()), &out, 1u << 20);
    bytes = bytes.subspan(h.total_size());
  }
}

void inspect(const produce_request& req) {
  for (const auto& topic : req.topic_data) {
    for (const auto& partition : topic.partition_data) check_records(partition.record_set);
  }
}
template <typename T>
void inspect(const T&) {}

template <typename T>
void fuzz_request(std::span<const uint8_t> frame, int16_t version) {
  if (version < T::min_version || version > T::max_version) return;  // broker rejects these
  reader r(frame);
  request_header header;
  if (!header.decode(r, request_header_version(T::api_key, version))) return;
  T request;
  if (!request.decode(r, version)) return;
  inspect(request);

  writer w;
  request.encode(w, version);
  if (!w.ok()) abort();  // a decoded value must be representable in its own version
  std::vector<uint8_t> encoded = w.flatten();
  reader again(encoded);
  T decoded_again;
  if (!decoded_again.decode(again, version) || again.remaining() != 0) abort();
  if (!(decoded_again == request)) abort();
}

bool handles_api_key(int16_t api_key) {
  switch (api_key) {
#define VARVE_FUZZ_API(name) case name##_request::api_key:
#include "fuzz_apis.inc"
#undef VARVE_FUZZ_API
    return true;
    default:
      return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The switch below is built from the definition files; all_apis() from the generator. A
  // row the switch does not handle would silently go unfuzzed, so refuse to start.
  for (const api_info& api : all_apis()) {
    if (!handles_api_key(api.key)) {
      fprintf(stderr, "fuzz_request_decode: api %s (key %d) is not in fuzz_apis.inc\n", api.name,
              api.key);
      abort();
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  std::span<const uint8_t> frame(data, size);
  int16_t api_key = peek_int16(data);
  int16_t api_version = peek_int16(data + 2);
  switch (api_key) {
#define VARVE_FUZZ_API(name)                         \
  case name##_request::api_key:                      \
    fuzz_request<name##_request>(frame, api_version); \
    break;
#include "fuzz_apis.inc"
#undef VARVE_FUZZ_API
    default:
      break;
  }
  return 0;
}
