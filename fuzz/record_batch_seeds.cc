// Writes seed inputs for fuzz_record_batch into the directory given as argv[1]: one valid
// batch per codec and shape (plain, headers and null fields, transactional control marker,
// LogAppendTime, sparse offsets), so the fuzzer starts inside the record and codec parsers
// instead of having to discover a valid CRC and header by chance.
#include <cstdio>
#include <string>
#include <vector>

#include "protocol/record_batch.h"

using namespace varve::protocol;

namespace {

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

bool write_file(const std::string& path, const std::vector<uint8_t>& b) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(b.data(), 1, b.size(), f) == b.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  std::vector<record> rs(3);
  rs[0].key = bytes_of("key");
  rs[0].value = bytes_of("a value that repeats, a value that repeats");
  rs[0].timestamp = 1700000000000;
  rs[1].value = bytes_of("no key");
  rs[1].headers.push_back({"h", bytes_of("v")});
  rs[1].headers.push_back({"n", std::nullopt});
  rs[1].timestamp = 1700000000001;
  rs[2].key = bytes_of("tombstone");
  rs[2].timestamp = 1699999999999;

  const char* names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
  int written = 0;
  for (int c = 0; c <= 4; ++c) {
    batch_builder_options opts;
    opts.compression = static_cast<compression_type>(c);
    opts.producer_id = 1000;
    opts.producer_epoch = 0;
    opts.base_sequence = 5;
    auto b = build_batch(rs, opts);
    written += write_file(dir + "/batch-" + names[c], b);
    set_log_append_time(b, 1800000000000);
    written += write_file(dir + "/batch-lat-" + names[c], b);
  }
  std::vector<record> sparse = rs;
  sparse[0].offset = 10;
  sparse[1].offset = 12;
  sparse[2].offset = 15;
  written += write_file(dir + "/batch-sparse", build_batch_with_offsets(sparse, {}, 10, 6));

  record marker;
  marker.key = std::vector<uint8_t>{0, 0, 0, 0};
  marker.value = std::vector<uint8_t>{0, 0, 0, 0, 0, 1};
  batch_builder_options control;
  control.control = true;
  control.transactional = true;
  control.producer_id = 7;
  control.producer_epoch = 2;
  written += write_file(dir + "/batch-control", build_batch({marker}, control));
  if (written != 12) {
    std::fprintf(stderr, "could not write seeds to %s\n", dir.c_str());
    return 1;
  }
  return 0;
}
