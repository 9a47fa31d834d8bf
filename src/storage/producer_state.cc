#include "storage/producer_state.h"

#include <algorithm>
#include <cassert>
#include <string>
#include <system_error>
#include <vector>

#include "common/log.h"
#include "protocol/crc32c.h"
#include "storage/file_util.h"
#include "storage/format.h"
#include "storage/log.h"

namespace varve::storage {

namespace {

constexpr std::string_view kComponent = "producer_state";

// ---- sequence arithmetic -------------------------------------------------------------------
// Sequences live in [0, INT32_MAX]; the one after INT32_MAX is 0.

int32_t next_sequence(int32_t seq) { return seq == INT32_MAX ? 0 : seq + 1; }

int32_t last_sequence_of(const protocol::record_batch_header& b) {
  if (b.base_sequence < 0) return b.base_sequence;
  const int64_t modulus = int64_t{INT32_MAX} + 1;
  return static_cast<int32_t>((int64_t{b.base_sequence} + b.last_offset_delta) % modulus);
}

// ---- snapshot file codec (docs/format/producer-snapshot.md) --------------------------------

constexpr uint32_t kSnapshotMagic = 0x56505353;  // "VPSS"
constexpr int16_t kSnapshotVersion = 1;
constexpr size_t kSnapshotHeaderSize = 4 + 2 + 4;  // magic, version, crc
constexpr size_t kProducerFixedSize = 8 + 2 + 4 + 8 + 8 + 1;
constexpr std::string_view kSnapshotSuffix = ".snapshot";

// CRC-32C of the body (the checksum record batches use).
uint32_t snapshot_crc(std::span<const uint8_t> body) { return protocol::crc32c(body); }

class writer {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void i16(int16_t v) { be(static_cast<uint16_t>(v), 2); }
  void i32(int32_t v) { be(static_cast<uint32_t>(v), 4); }
  void u32(uint32_t v) { be(v, 4); }
  void i64(int64_t v) { be(static_cast<uint64_t>(v), 8); }
  std::vector<uint8_t>& bytes() { return out_; }

 private:
  void be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

class reader {
 public:
  explicit reader(std::span<const uint8_t> in) : in_(in) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return in_.size() - pos_; }
  uint8_t u8() { return static_cast<uint8_t>(be(1)); }
  int16_t i16() { return static_cast<int16_t>(be(2)); }
  int32_t i32() { return static_cast<int32_t>(be(4)); }
  uint32_t u32() { return static_cast<uint32_t>(be(4)); }
  int64_t i64() { return static_cast<int64_t>(be(8)); }

 private:
  uint64_t be(size_t n) {
    if (!ok_ || remaining() < n) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | in_[pos_ + i];
    pos_ += n;
    return v;
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

std::vector<uint8_t> encode_snapshot(int64_t offset,
                                     const std::map<int64_t, producer_entry>& producers) {
  writer body;
  body.i64(offset);
  body.i32(static_cast<int32_t>(producers.size()));
  for (const auto& [id, e] : producers) {
    assert(e.batches.size() <= kProducerBatchCacheSize);
    body.i64(id);
    body.i16(e.epoch);
    body.i32(e.coordinator_epoch);
    body.i64(e.last_timestamp);
    body.i64(e.current_txn_first_offset);
    body.u8(static_cast<uint8_t>(e.batches.size()));
    for (const auto& b : e.batches) {
      body.i32(b.first_seq);
      body.i32(b.last_seq);
      body.i64(b.first_offset);
      body.i64(b.last_offset);
      body.i64(b.timestamp);
    }
  }
  writer file;
  file.u32(kSnapshotMagic);
  file.i16(kSnapshotVersion);
  file.u32(snapshot_crc(body.bytes()));
  auto& out = file.bytes();
  out.insert(out.end(), body.bytes().begin(), body.bytes().end());
  return std::move(out);
}

// Decodes a snapshot file. On failure returns false and sets *why.
bool decode_snapshot(std::span<const uint8_t> data, int64_t expected_offset,
                     std::map<int64_t, producer_entry>* out, std::string* why) {
  reader r(data);
  const uint32_t magic = r.u32();
  const int16_t version = r.i16();
  const uint32_t crc = r.u32();
  if (!r.ok()) return *why = "shorter than the header", false;
  if (magic != kSnapshotMagic) return *why = "bad magic", false;
  if (version != kSnapshotVersion) return *why = "unsupported version " + std::to_string(version), false;
  const auto body = data.subspan(kSnapshotHeaderSize);
  if (snapshot_crc(body) != crc) return *why = "CRC mismatch", false;

  reader b(body);
  const int64_t offset = b.i64();
  const int32_t count = b.i32();
  if (!b.ok()) return *why = "truncated body", false;
  if (offset != expected_offset) return *why = "offset in body differs from file name", false;
  // Every producer needs at least kProducerFixedSize bytes: bound the count before trusting it.
  if (count < 0 || static_cast<uint64_t>(count) * kProducerFixedSize > b.remaining())
    return *why = "bad producer count", false;

  std::map<int64_t, producer_entry> producers;
  for (int32_t i = 0; i < count; ++i) {
    const int64_t id = b.i64();
    producer_entry e;
    e.epoch = b.i16();
    e.coordinator_epoch = b.i32();
    e.last_timestamp = b.i64();
    e.current_txn_first_offset = b.i64();
    const uint8_t n = b.u8();
    if (!b.ok()) return *why = "truncated producer entry", false;
    if (id < 0 || n > kProducerBatchCacheSize) return *why = "bad producer entry", false;
    for (uint8_t j = 0; j < n; ++j) {
      producer_batch_metadata m;
      m.first_seq = b.i32();
      m.last_seq = b.i32();
      m.first_offset = b.i64();
      m.last_offset = b.i64();
      m.timestamp = b.i64();
      e.batches.push_back(m);
    }
    if (!b.ok()) return *why = "truncated batch entry", false;
    if (!producers.emplace(id, std::move(e)).second) return *why = "duplicate producer id", false;
  }
  if (b.remaining() != 0) return *why = "trailing bytes", false;
  *out = std::move(producers);
  return true;
}

// ---- files ---------------------------------------------------------------------------------

// Snapshot offsets present in `dir`, ascending.
std::vector<int64_t> list_snapshots(const std::filesystem::path& dir) {
  std::vector<int64_t> out;
  std::error_code ec;
  for (const auto& ent : std::filesystem::directory_iterator(dir, ec)) {
    if (auto off = parse_segment_file_name(ent.path().filename().string(), kSnapshotSuffix))
      out.push_back(*off);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void remove_file(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove(p, ec);
  if (ec) {
    VLOG_WARN(kComponent) << "could not delete " << p.string() << ": " << ec.message();
  }
}

}  // namespace

producer_state::producer_state(std::filesystem::path dir) : dir_(std::move(dir)) {}

const producer_entry* producer_state::find(int64_t producer_id) const {
  auto it = producers_.find(producer_id);
  return it == producers_.end() ? nullptr : &it->second;
}

sequence_check producer_state::check(const protocol::record_batch_header& batch,
                                     producer_batch_metadata* duplicate_of) const {
  if (batch.producer_id < 0) return sequence_check::ok;
  const producer_entry* e = find(batch.producer_id);

  if (e != nullptr && batch.producer_epoch < e->epoch) return sequence_check::invalid_producer_epoch;
  // Control batches (transaction markers) carry no sequence: only the epoch matters.
  if (batch.is_control()) return sequence_check::ok;

  const int32_t first_seq = batch.base_sequence;
  const int32_t last_seq = last_sequence_of(batch);
  const bool same_epoch = e != nullptr && batch.producer_epoch == e->epoch;

  if (same_epoch) {
    for (const auto& m : e->batches) {
      if (m.first_seq == first_seq && m.last_seq == last_seq) {
        if (duplicate_of != nullptr) *duplicate_of = m;
        return sequence_check::duplicate;
      }
    }
  }
  // A new epoch, an unknown producer, or an epoch with no data batch yet (bumped by a
  // transaction marker) starts at sequence 0. We do not accept an arbitrary first sequence
  // from an unknown producer (see docs/format/producer-snapshot.md, "Sequence rules").
  if (!same_epoch || e->batches.empty()) {
    return first_seq == 0 ? sequence_check::ok : sequence_check::out_of_order;
  }
  return first_seq == next_sequence(e->batches.back().last_seq) ? sequence_check::ok
                                                                : sequence_check::out_of_order;
}

void producer_state::update(const protocol::record_batch_header& batch) {
  if (batch.producer_id < 0) return;
  producer_entry& e = producers_[batch.producer_id];
  // The log is the source of truth: whatever epoch it carries becomes current (on replay a
  // follower may see epochs the leader validated). A change of epoch invalidates the cache.
  if (batch.producer_epoch != e.epoch) {
    e.batches.clear();
    e.epoch = batch.producer_epoch;
  }
  e.last_timestamp = batch.max_timestamp;

  if (batch.is_control()) {
    // A commit/abort marker ends the open transaction. The coordinator epoch is in the
    // marker's record value, which callers that decode it can store via set_coordinator_epoch.
    e.current_txn_first_offset = -1;
    return;
  }

  producer_batch_metadata m;
  m.first_seq = batch.base_sequence;
  m.last_seq = last_sequence_of(batch);
  m.first_offset = batch.base_offset;
  m.last_offset = batch.last_offset();
  m.timestamp = batch.max_timestamp;
  e.batches.push_back(m);
  while (e.batches.size() > kProducerBatchCacheSize) e.batches.pop_front();

  if (batch.is_transactional() && e.current_txn_first_offset < 0) {
    e.current_txn_first_offset = batch.base_offset;
  }
}

void producer_state::set_coordinator_epoch(int64_t producer_id, int32_t coordinator_epoch) {
  auto it = producers_.find(producer_id);
  if (it != producers_.end()) it->second.coordinator_epoch = coordinator_epoch;
}

void producer_state::expire(int64_t now_ms, int64_t expiration_ms) {
  const int64_t cutoff = now_ms - expiration_ms;
  std::erase_if(producers_, [cutoff](const auto& kv) {
    return kv.second.last_timestamp < cutoff && kv.second.current_txn_first_offset < 0;
  });
}

std::filesystem::path producer_state::snapshot_path(int64_t offset) const {
  return dir_ / segment_file_name(offset, kSnapshotSuffix);
}

std::vector<int64_t> producer_state::snapshot_offsets() const { return list_snapshots(dir_); }

void producer_state::take_snapshot(int64_t offset) {
  const auto bytes = encode_snapshot(offset, producers_);
  const auto path = snapshot_path(offset);
  std::string error;
  if (!write_file_atomically(
          path, {reinterpret_cast<const char*>(bytes.data()), bytes.size()}, &error)) {
    // The previous snapshots stay; the next load replays a little more of the log.
    VLOG_ERROR(kComponent) << "cannot write producer snapshot " << path.string() << ": " << error;
    return;
  }

  // Keep the newest kSnapshotsRetained snapshots.
  auto offsets = list_snapshots(dir_);
  if (offsets.size() > kSnapshotsRetained) {
    for (size_t i = 0; i + kSnapshotsRetained < offsets.size(); ++i) {
      remove_file(snapshot_path(offsets[i]));
    }
  }
}

bool producer_state::read_snapshot(int64_t offset, std::map<int64_t, producer_entry>* out) const {
  const auto path = snapshot_path(offset);
  const auto data = read_small_file(path);
  if (!data) {
    VLOG_WARN(kComponent) << "cannot read producer snapshot " << path.string();
    return false;
  }
  std::string why;
  if (!decode_snapshot({reinterpret_cast<const uint8_t*>(data->data()), data->size()}, offset,
                       out, &why)) {
    VLOG_WARN(kComponent) << "skipping corrupt producer snapshot " << path.string() << ": " << why;
    return false;
  }
  return true;
}

void producer_state::load(const log& log) {
  if (dir_.empty()) dir_ = log.dir();
  producers_.clear();
  const int64_t log_end = log.log_end_offset();

  // Leftovers of an interrupted take_snapshot().
  std::error_code ec;
  for (const auto& ent : std::filesystem::directory_iterator(dir_, ec)) {
    const auto name = ent.path().filename().string();
    if (name.ends_with(std::string(kSnapshotSuffix) + std::string(kTmpSuffix))) {
      remove_file(ent.path());
    }
  }

  int64_t snapshot_offset = -1;
  auto offsets = list_snapshots(dir_);
  for (auto it = offsets.rbegin(); it != offsets.rend(); ++it) {
    if (*it > log_end) {
      // Covers offsets the log no longer has (truncated or lost in an unclean stop).
      remove_file(snapshot_path(*it));
      continue;
    }
    if (snapshot_offset >= 0) continue;  // already loaded a newer one; keep older as fallback
    std::map<int64_t, producer_entry> loaded;
    if (read_snapshot(*it, &loaded)) {
      producers_ = std::move(loaded);
      snapshot_offset = *it;
    } else {
      // Corrupt: derived state, rebuilt from an older snapshot or the log. Remove it so it
      // does not count towards the retained snapshots.
      remove_file(snapshot_path(*it));
    }
  }

  // Batches wholly below the snapshot offset are already in it. Retention may have deleted
  // the log up to past the snapshot: then replay starts at the log start.
  const int64_t from = snapshot_offset >= 0 ? snapshot_offset : log.log_start_offset();
  int64_t replayed = 0;
  log.for_each_batch(std::max(from, log.log_start_offset()), [&](const protocol::record_batch_header& h) {
    if (h.base_offset >= log_end) return false;
    if (h.producer_id >= 0 && h.last_offset() >= from) {
      update(h);
      ++replayed;
    }
    return true;
  });
  VLOG_INFO(kComponent) << "loaded producer state dir=" << dir_.string()
                        << " snapshot=" << snapshot_offset << " replayed_batches=" << replayed
                        << " producers=" << producers_.size();
}

void producer_state::truncate_and_reload(const log& log) {
  producers_.clear();
  load(log);
}

}  // namespace varve::storage
