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
#include "storage/segment.h"
#include "storage/txn_index.h"

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

// Reads the bytes of the batch starting at `base_offset` from the segment that holds it.
bool read_batch_bytes(const log& log, int64_t base_offset, std::vector<uint8_t>* out) {
  const segment* holder = nullptr;
  for (const segment* s : log.segments()) {
    if (s->base_offset() > base_offset) break;
    holder = s;
  }
  if (holder == nullptr) return false;
  auto b = holder->find_batch(base_offset);
  if (!b || b->header.base_offset != base_offset) return false;
  out->clear();
  return holder->read_batch(*b, out);
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
    verification_guards_.erase(batch.producer_id);
  }
  e.last_timestamp = batch.max_timestamp;

  if (batch.is_control()) {
    // A commit/abort marker ends the open transaction. The coordinator epoch is in the
    // marker's record value, which callers that decode it can store via set_coordinator_epoch.
    set_txn_first_offset(batch.producer_id, e, -1);
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
    set_txn_first_offset(batch.producer_id, e, batch.base_offset);
  }
}

void producer_state::set_txn_first_offset(int64_t producer_id, producer_entry& e,
                                          int64_t first_offset) {
  // Opening or closing a transaction ends any verification under way for it.
  verification_guards_.erase(producer_id);
  if (e.current_txn_first_offset >= 0) ongoing_txns_.erase(e.current_txn_first_offset);
  e.current_txn_first_offset = first_offset;
  if (first_offset >= 0) ongoing_txns_[first_offset] = producer_id;
}

void producer_state::rebuild_ongoing_txns() {
  ongoing_txns_.clear();
  for (const auto& [id, e] : producers_) {
    if (e.current_txn_first_offset >= 0) ongoing_txns_[e.current_txn_first_offset] = id;
  }
}

marker_check producer_state::check_marker(int64_t producer_id, int16_t producer_epoch,
                                          const protocol::txn_marker& marker) const {
  const producer_entry* e = find(producer_id);
  if (e == nullptr) return marker_check::ok;
  if (producer_epoch < e->epoch) return marker_check::invalid_producer_epoch;
  if (marker.coordinator_epoch < e->coordinator_epoch) return marker_check::coordinator_fenced;
  return marker_check::ok;
}

std::optional<completed_txn> producer_state::apply_marker(
    const protocol::record_batch_header& batch, const protocol::txn_marker& marker) {
  assert(batch.is_control() && batch.producer_id >= 0);
  producer_entry& e = producers_[batch.producer_id];
  if (batch.producer_epoch != e.epoch) {
    e.batches.clear();
    e.epoch = batch.producer_epoch;
  }
  e.last_timestamp = batch.max_timestamp;
  e.coordinator_epoch = marker.coordinator_epoch;
  verification_guards_.erase(batch.producer_id);
  if (e.current_txn_first_offset < 0) return std::nullopt;

  completed_txn done;
  done.producer_id = batch.producer_id;
  done.first_offset = e.current_txn_first_offset;
  done.last_offset = batch.base_offset;
  done.aborted = marker.type == protocol::control_record_type::abort;
  set_txn_first_offset(batch.producer_id, e, -1);
  done.last_stable_offset =
      ongoing_txns_.empty() ? done.last_offset + 1 : ongoing_txns_.begin()->first;
  unreplicated_txns_[done.first_offset] = done;
  return done;
}

std::optional<completed_txn> producer_state::apply_batch(std::span<const uint8_t> batch,
                                                         const log& log, txn_index& index) {
  auto h = protocol::parse_batch_header(batch);
  if (!h || h->producer_id < 0) return std::nullopt;
  if (!h->is_control()) {
    update(*h);
    return std::nullopt;
  }
  auto marker = protocol::parse_txn_marker(batch.first(std::min(batch.size(), h->total_size())));
  if (!marker) {
    // Not a COMMIT/ABORT marker (or unreadable): no transaction ends here.
    VLOG_WARN(kComponent) << dir_.string() << ": control batch at offset " << h->base_offset
                          << " of producer " << h->producer_id
                          << " is not a transaction marker; ignoring it";
    producer_entry& e = producers_[h->producer_id];
    if (h->producer_epoch != e.epoch) {
      e.batches.clear();
      e.epoch = h->producer_epoch;
    }
    e.last_timestamp = h->max_timestamp;
    return std::nullopt;
  }
  auto done = apply_marker(*h, *marker);
  if (done && done->aborted) {
    index.append(log, aborted_txn{done->producer_id, done->first_offset, done->last_offset,
                                  done->last_stable_offset});
  }
  return done;
}

std::vector<completed_txn> producer_state::apply_batches(std::span<const uint8_t> batches,
                                                         const log& log, txn_index& index) {
  std::vector<completed_txn> out;
  size_t pos = 0;
  while (pos < batches.size()) {
    auto h = protocol::parse_batch_header(batches.subspan(pos));
    if (!h || h->total_size() > batches.size() - pos) break;  // the log validated these bytes
    if (auto done = apply_batch(batches.subspan(pos, h->total_size()), log, index)) {
      out.push_back(*done);
    }
    pos += h->total_size();
  }
  return out;
}

bool producer_state::needs_verification(const protocol::record_batch_header& batch) const {
  if (batch.producer_id < 0 || !batch.is_transactional() || batch.is_control()) return false;
  const producer_entry* e = find(batch.producer_id);
  return e == nullptr || e->current_txn_first_offset < 0;
}

uint64_t producer_state::start_verification(int64_t producer_id) {
  const uint64_t guard = next_guard_++;
  verification_guards_[producer_id] = guard;
  return guard;
}

bool producer_state::verification_ok(const protocol::record_batch_header& batch,
                                     uint64_t guard) const {
  if (!needs_verification(batch)) return true;
  auto it = verification_guards_.find(batch.producer_id);
  return guard != 0 && it != verification_guards_.end() && it->second == guard;
}

std::optional<int64_t> producer_state::first_unstable_offset() const {
  std::optional<int64_t> first;
  if (!ongoing_txns_.empty()) first = ongoing_txns_.begin()->first;
  if (!unreplicated_txns_.empty()) {
    const int64_t u = unreplicated_txns_.begin()->first;
    first = first ? std::min(*first, u) : u;
  }
  return first;
}

int64_t producer_state::last_stable_offset(int64_t high_watermark, int64_t log_start_offset) const {
  int64_t unstable = INT64_MAX;
  if (!ongoing_txns_.empty()) unstable = ongoing_txns_.begin()->first;
  for (const auto& [first, txn] : unreplicated_txns_) {
    if (first >= unstable) break;  // ordered by first offset: nothing later can lower it
    if (txn.last_offset >= high_watermark) unstable = first;
  }
  return std::min(high_watermark, std::max(log_start_offset, unstable));
}

void producer_state::on_high_watermark(int64_t high_watermark) {
  std::erase_if(unreplicated_txns_, [high_watermark](const auto& kv) {
    return kv.second.last_offset < high_watermark;
  });
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

int64_t producer_state::restore_snapshot(const log& log, int64_t max_offset) {
  if (dir_.empty()) dir_ = log.dir();
  producers_.clear();
  ongoing_txns_.clear();
  unreplicated_txns_.clear();
  verification_guards_.clear();
  const int64_t log_end = log.log_end_offset();
  if (log.created()) {  // a brand-new directory: no snapshots to list
    rebuild_ongoing_txns();
    return -1;
  }

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
    if (*it > max_offset) continue;      // valid, but the caller needs an older starting point
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
  rebuild_ongoing_txns();
  return snapshot_offset;
}

void producer_state::load(const log& log) {
  const int64_t log_end = log.log_end_offset();
  const int64_t snapshot_offset = restore_snapshot(log, log_end);

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

void producer_state::load(const log& log, txn_index& index) {
  const int64_t log_end = log.log_end_offset();
  const int64_t snapshot_offset =
      restore_snapshot(log, std::min(log_end, index.first_damaged_offset()));
  const int64_t from = std::max(snapshot_offset >= 0 ? snapshot_offset : log.log_start_offset(),
                                log.log_start_offset());
  // Entries for markers at or after `from` are rebuilt by the replay below, exactly as they
  // were first written (they depend only on the log). Older ones came from flushed files.
  index.truncate_to(from);

  int64_t replayed = 0;
  std::vector<uint8_t> bytes;
  log.for_each_batch(from, [&](const protocol::record_batch_header& h) {
    if (h.base_offset >= log_end) return false;
    if (h.producer_id < 0 || h.last_offset() < from) return true;
    ++replayed;
    if (!h.is_control()) {
      update(h);
      return true;
    }
    if (!read_batch_bytes(log, h.base_offset, &bytes)) {
      VLOG_ERROR(kComponent) << dir_.string() << ": cannot read the control batch at offset "
                             << h.base_offset << "; its transaction stays open";
      return true;
    }
    apply_batch(bytes, log, index);
    return true;
  });
  if (log.created()) return;  // nothing was loaded; the log's own line says it is new
  VLOG_INFO(kComponent) << "loaded producer state dir=" << dir_.string()
                        << " snapshot=" << snapshot_offset << " replayed_batches=" << replayed
                        << " producers=" << producers_.size()
                        << " open_transactions=" << ongoing_txns_.size()
                        << " aborted_index_entries=" << index.entries().size();
}

void producer_state::truncate_fully(txn_index& index) {
  for (int64_t offset : list_snapshots(dir_)) remove_file(snapshot_path(offset));
  producers_.clear();
  ongoing_txns_.clear();
  unreplicated_txns_.clear();
  verification_guards_.clear();
  index.clear();
}

void producer_state::truncate_and_reload(const log& log, txn_index& index) {
  index.truncate_to(log.log_end_offset());
  index.sync_with_segments(log);
  load(log, index);
}

void producer_state::truncate_and_reload(const log& log) {
  producers_.clear();
  load(log);
}

}  // namespace varve::storage
