#include "replication/partition_reader.h"

#include <span>
#include <vector>

#include "protocol/record_control.h"
#include "storage/file_util.h"

namespace varve::replication {
namespace {
constexpr uint32_t kReadBytes = 1 << 20;  // bytes asked of the log per read
}  // namespace

bool read_partition_records(partition& part, const record_fn& on_record, const marker_fn& on_marker,
                            int64_t* next_offset, std::string* error) {
  int64_t offset = part.log_start_offset();
  const int64_t end = part.high_watermark();
  std::vector<uint8_t> buf;
  std::vector<protocol::record> decoded;
  while (offset < end) {
    storage::read_info info;
    if (!part.log().read(offset, kReadBytes, end, true, &info)) {
      *error = "cannot read offset " + std::to_string(offset);
      return false;
    }
    if (info.regions.empty()) break;
    const int64_t before = offset;
    for (const auto& region : info.regions) {
      buf.resize(region.size);
      if (storage::pread_full(region.file->fd(), buf, region.position, nullptr) !=
          static_cast<int64_t>(region.size)) {
        *error = "read error at offset " + std::to_string(offset);
        return false;
      }
      size_t pos = 0;
      while (pos + protocol::kRecordBatchHeaderSize <= buf.size()) {
        auto hdr = protocol::parse_batch_header(std::span(buf).subspan(pos));
        if (!hdr || hdr->total_size() > buf.size() - pos) break;
        const auto batch = std::span<const uint8_t>(buf).subspan(pos, hdr->total_size());
        pos += hdr->total_size();
        if (hdr->last_offset() < offset) continue;
        offset = hdr->last_offset() + 1;
        if (hdr->is_control()) {
          if (!on_marker) continue;
          if (auto m = protocol::parse_txn_marker(batch)) {
            on_marker(hdr->producer_id, m->type == protocol::control_record_type::commit);
          }
          continue;
        }
        decoded.clear();
        if (!protocol::decode_records(batch, &decoded)) {
          *error = "undecodable batch at offset " + std::to_string(hdr->base_offset);
          return false;
        }
        for (const auto& r : decoded) on_record(r, *hdr);
      }
    }
    if (offset == before) break;  // no progress: nothing more to read
  }
  *next_offset = offset;
  return true;
}

}  // namespace varve::replication
