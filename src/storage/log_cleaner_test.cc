#include "storage/log_cleaner.h"

#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "protocol/record_control.h"
#include "storage/file_util.h"
#include "storage/format.h"
#include "storage/log.h"
#include "storage/producer_state.h"
#include "storage/segment.h"
#include "storage/txn_index.h"

namespace varve::storage {
namespace {

namespace fs = std::filesystem;
using protocol::compression_type;
using protocol::record;

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kDay = 86'400'000;

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "varve-cleaner-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

struct kv {
  std::optional<std::string> key;
  std::optional<std::string> value;  // nullopt: tombstone
};

log_config compact_config() {
  log_config c;
  c.compact = true;
  c.delete_retention = false;
  c.segment_bytes = 1024;
  c.min_cleanable_dirty_ratio = 0.5;
  c.delete_retention_ms = kDay;
  return c;
}

std::unique_ptr<log> open_log(const fs::path& dir, const log_config& config) {
  std::string error;
  auto l = log::open(dir, config, -1, &error);
  EXPECT_TRUE(l) << error;
  return l;
}

// Appends one batch holding `records`; returns its first offset.
int64_t append(log& l, const std::vector<kv>& records, int64_t ts = kNow,
               protocol::batch_builder_options options = {}) {
  std::vector<record> rs;
  for (const auto& r : records) {
    record x;
    x.timestamp = ts;
    if (r.key) x.key = bytes_of(*r.key);
    if (r.value) x.value = bytes_of(*r.value);
    rs.push_back(std::move(x));
  }
  auto batch = protocol::build_batch(rs, options);
  append_info info;
  EXPECT_EQ(l.append_as_leader(batch, 0, ts, &info), append_error::none);
  return info.first_offset;
}

struct stored {
  int64_t offset;
  std::optional<std::string> key;
  std::optional<std::string> value;
  compression_type codec;
};

// Every data record in the log, in offset order, read through log::read as a fetch would
// (read_uncommitted, without control records).
std::vector<stored> read_all(const log& l) {
  std::vector<stored> out;
  read_info info;
  EXPECT_TRUE(l.read(l.log_start_offset(), UINT32_MAX, l.log_end_offset(), true, &info));
  for (const auto& region : info.regions) {
    std::vector<uint8_t> buf(region.size);
    EXPECT_EQ(::pread(region.file->fd(), buf.data(), buf.size(), static_cast<off_t>(region.position)),
              static_cast<ssize_t>(buf.size()));
    size_t pos = 0;
    while (pos < buf.size()) {
      protocol::record_batch_header h;
      auto batch = std::span(buf).subspan(pos);
      EXPECT_EQ(protocol::validate_batch(batch, &h), protocol::batch_error::none);
      if (h.is_control()) {  // transaction markers are not data
        pos += h.total_size();
        continue;
      }
      std::vector<record> records;
      EXPECT_TRUE(protocol::decode_records(batch.first(h.total_size()), &records));
      for (const auto& r : records) {
        stored s{r.offset, std::nullopt, std::nullopt, h.compression()};
        if (r.key) s.key = std::string(r.key->begin(), r.key->end());
        if (r.value) s.value = std::string(r.value->begin(), r.value->end());
        out.push_back(s);
      }
      pos += h.total_size();
    }
  }
  return out;
}

// Writes `rounds` updates of keys k0..k{keys-1} (one batch per update, value "v<round>-<key>"),
// then rolls so everything is below the active segment. Returns key → (offset, value) of the
// newest update.
std::map<std::string, std::pair<int64_t, std::string>> write_updates(log& l, int keys, int rounds,
                                                                     int64_t ts = kNow) {
  std::map<std::string, std::pair<int64_t, std::string>> newest;
  for (int round = 0; round < rounds; ++round) {
    for (int k = 0; k < keys; ++k) {
      std::string key = "k" + std::to_string(k);
      std::string value = "v" + std::to_string(round) + "-" + key + std::string(20, 'x');
      newest[key] = {append(l, {{key, value}}, ts), value};
    }
  }
  return newest;
}

void roll(log& l, int64_t now = kNow + 30 * kDay) { l.maybe_roll(now); }

// One pass with the log's own aborted-transaction index (none for non-transactional logs).
std::optional<clean_stats> clean(log& l, int64_t now, int64_t last_stable_offset) {
  txn_index index(l.dir());
  index.load(l);
  return maybe_clean(l, now, last_stable_offset, index, [] { return INT64_MAX; });
}

std::vector<int64_t> segment_bases(const log& l) {
  std::vector<int64_t> out;
  for (const segment* s : l.segments()) out.push_back(s->base_offset());
  return out;
}

TEST(log_cleaner, keeps_only_the_newest_value_per_key_at_its_original_offset) {
  temp_dir dir;
  auto l = open_log(dir.path(), compact_config());
  auto newest = write_updates(*l, 10, 6);
  roll(*l);
  ASSERT_GT(l->segment_count(), 3u);
  const int64_t leo = l->log_end_offset();

  auto stats = clean(*l, kNow + 1000, leo);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->records_removed, 50);
  EXPECT_EQ(l->log_end_offset(), leo);
  auto records = read_all(*l);
  ASSERT_EQ(records.size(), 10u);
  for (const auto& r : records) {
    ASSERT_TRUE(r.key);
    EXPECT_EQ(r.offset, newest[*r.key].first) << *r.key;
    EXPECT_EQ(r.value, newest[*r.key].second) << *r.key;
  }
  auto cp = read_cleaner_checkpoint(dir.path());
  ASSERT_TRUE(cp);
  EXPECT_EQ(cp->first_dirty_offset, leo);
  // Nothing dirty is left: the next call does nothing.
  EXPECT_FALSE(clean(*l, kNow + 2000, leo));
}

TEST(log_cleaner, never_cleans_the_active_segment_or_a_log_without_compaction) {
  temp_dir dir;
  log_config c = compact_config();
  c.segment_bytes = 1 << 20;
  auto l = open_log(dir.path(), c);
  write_updates(*l, 5, 5);  // all in the active segment
  EXPECT_FALSE(clean(*l, kNow + 1000, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 25u);

  temp_dir dir2;
  log_config d = compact_config();
  d.compact = false;
  d.delete_retention = true;
  auto l2 = open_log(dir2.path(), d);
  write_updates(*l2, 5, 5);
  roll(*l2);
  EXPECT_FALSE(clean(*l2, kNow + 1000, l2->log_end_offset()));
  EXPECT_EQ(read_all(*l2).size(), 25u);
}

TEST(log_cleaner, removes_tombstones_only_after_delete_retention_ms) {
  temp_dir dir;
  auto l = open_log(dir.path(), compact_config());
  write_updates(*l, 5, 3);
  const int64_t tomb = append(*l, {{std::string("k0"), std::nullopt}});
  roll(*l);
  const int64_t t0 = kNow + 1000;
  ASSERT_TRUE(clean(*l, t0, l->log_end_offset()));
  auto records = read_all(*l);
  ASSERT_EQ(records.size(), 5u);  // k1..k4 and the tombstone of k0
  EXPECT_EQ(records.back().offset, tomb);
  EXPECT_FALSE(records.back().value);

  // Not yet due: no dirty data and the tombstone's horizon has not passed.
  EXPECT_FALSE(clean(*l, t0 + kDay - 1, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 5u);

  auto stats = clean(*l, t0 + kDay, l->log_end_offset());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->tombstones_removed, 1);
  records = read_all(*l);
  ASSERT_EQ(records.size(), 4u);
  for (const auto& r : records) EXPECT_NE(r.key, "k0");
  auto cp = read_cleaner_checkpoint(dir.path());
  ASSERT_TRUE(cp);
  EXPECT_TRUE(cp->tombstone_ranges.empty());
}

TEST(log_cleaner, respects_min_compaction_lag) {
  temp_dir dir;
  log_config c = compact_config();
  c.min_compaction_lag_ms = 10'000;
  auto l = open_log(dir.path(), c);
  write_updates(*l, 4, 4, kNow);
  roll(*l, kNow + 30 * kDay);
  EXPECT_FALSE(clean(*l, kNow + 5'000, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 16u);
  ASSERT_TRUE(clean(*l, kNow + 10'001, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 4u);
}

TEST(log_cleaner, waits_for_the_dirty_ratio_unless_max_compaction_lag_passed) {
  temp_dir dir;
  log_config c = compact_config();
  c.min_cleanable_dirty_ratio = 0.9;
  c.segment_bytes = 600;
  auto l = open_log(dir.path(), c);
  // Distinct keys: the first pass removes nothing, the log stays large and clean.
  for (int i = 0; i < 40; ++i) append(*l, {{"key" + std::to_string(i), std::string(30, 'v')}});
  roll(*l);
  ASSERT_TRUE(clean(*l, kNow + 1000, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 40u);

  // A little new dirty data: well below a 0.9 dirty ratio.
  append(*l, {{std::string("key0"), std::string("new")}}, kNow + 2000);
  roll(*l, kNow + 60 * kDay);
  EXPECT_FALSE(clean(*l, kNow + 3000, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 41u);

  // max.compaction.lag.ms forces the pass regardless of the ratio.
  c.max_compaction_lag_ms = 500;
  l->update_config(c);
  auto stats = clean(*l, kNow + 3000, l->log_end_offset());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->records_removed, 1);
  EXPECT_EQ(read_all(*l).size(), 40u);
}

TEST(log_cleaner, merges_small_cleaned_segments_into_one_named_by_the_first_base) {
  temp_dir dir;
  log_config c = compact_config();
  c.segment_bytes = 400;
  auto l = open_log(dir.path(), c);
  auto newest = write_updates(*l, 3, 10);
  roll(*l);
  const size_t before = l->segment_count();
  ASSERT_GT(before, 5u);
  c.segment_bytes = 1 << 20;
  l->update_config(c);
  auto stats = clean(*l, kNow + 1000, l->log_end_offset());
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->segments_after, 1);
  EXPECT_EQ(segment_bases(*l).size(), 2u);  // the merged one and the active one
  EXPECT_EQ(segment_bases(*l).front(), 0);
  EXPECT_TRUE(fs::exists(dir.path() / segment_file_name(0, kLogSuffix)));
  auto records = read_all(*l);
  ASSERT_EQ(records.size(), 3u);
  for (const auto& r : records) EXPECT_EQ(r.offset, newest[*r.key].first);
  // The merged segment reopens cleanly with rebuilt indexes.
  l->close();
  l = open_log(dir.path(), c);
  EXPECT_EQ(read_all(*l).size(), 3u);
}

TEST(log_cleaner, recompresses_with_the_original_codec) {
  for (auto codec : {compression_type::gzip, compression_type::snappy, compression_type::lz4,
                     compression_type::zstd}) {
    temp_dir dir;
    auto l = open_log(dir.path(), compact_config());
    protocol::batch_builder_options o;
    o.compression = codec;
    const int64_t first = append(*l, {{std::string("a"), std::string("1")},
                                      {std::string("b"), std::string("1")},
                                      {std::string("c"), std::string("1")}},
                                 kNow, o);
    append(*l, {{std::string("a"), std::string("2")}}, kNow, o);
    roll(*l);
    ASSERT_TRUE(clean(*l, kNow + 1000, l->log_end_offset()));
    auto records = read_all(*l);
    ASSERT_EQ(records.size(), 3u) << static_cast<int>(codec);
    EXPECT_EQ(records[0].offset, first + 1);
    EXPECT_EQ(records[0].key, "b");
    EXPECT_EQ(records[1].offset, first + 2);
    EXPECT_EQ(records[2].value, "2");
    for (const auto& r : records) EXPECT_EQ(r.codec, codec);
  }
}

TEST(log_cleaner, keeps_keyless_records_and_the_last_batch_of_each_producer) {
  temp_dir dir;
  auto l = open_log(dir.path(), compact_config());
  protocol::batch_builder_options o;
  o.producer_id = 7;
  o.producer_epoch = 0;
  o.base_sequence = 0;
  append(*l, {{std::nullopt, std::string("no key")}});
  append(*l, {{std::string("a"), std::string("1")}}, kNow, o);
  o.base_sequence = 1;
  const int64_t last_of_producer = append(*l, {{std::string("b"), std::string("1")}}, kNow, o);
  append(*l, {{std::string("a"), std::string("2")}, {std::string("b"), std::string("2")}});
  roll(*l);
  ASSERT_TRUE(clean(*l, kNow + 1000, l->log_end_offset()));
  auto records = read_all(*l);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_FALSE(records[0].key);
  // The producer's last batch lost its record but stays, empty, with its sequence range.
  bool found = false;
  l->for_each_batch(0, [&](const protocol::record_batch_header& h) {
    if (h.base_offset == last_of_producer) {
      found = true;
      EXPECT_EQ(h.records_count, 0);
      EXPECT_EQ(h.producer_id, 7);
      EXPECT_EQ(h.base_sequence, 1);
    }
    return true;
  });
  EXPECT_TRUE(found);
}

// ---- Transactions ---------------------------------------------------------------------------

// A compacted log with the partition's transaction bookkeeping: every append goes through
// producer_state::apply_batches (which writes the aborted-transaction index), and the high
// watermark is the log end.
class txn_log {
 public:
  explicit txn_log(const log_config& c = compact_config())
      : index_(dir_.path()), state_(dir_.path()) {
    l_ = open_log(dir_.path(), c);
    index_.load(*l_);
    state_.load(*l_, index_);
  }

  // One batch of `producer_id` (-1: a plain, non-idempotent batch); returns its first offset.
  int64_t write(int64_t producer_id, const std::vector<kv>& records, bool transactional,
                int64_t ts = kNow) {
    protocol::batch_builder_options o;
    if (producer_id >= 0) {
      o.producer_id = producer_id;
      o.producer_epoch = 0;
      o.base_sequence = next_seq_[producer_id];
      o.transactional = transactional;
      next_seq_[producer_id] += static_cast<int32_t>(records.size());
    }
    std::vector<record> rs;
    for (const auto& r : records) {
      record x;
      x.timestamp = ts;
      if (r.key) x.key = bytes_of(*r.key);
      if (r.value) x.value = bytes_of(*r.value);
      rs.push_back(std::move(x));
    }
    return append(protocol::build_batch(rs, o), ts);
  }

  // Appends the COMMIT or ABORT marker of `producer_id`'s transaction; returns its offset.
  int64_t end_txn(int64_t producer_id, bool commit, int64_t ts = kNow) {
    protocol::txn_marker m;
    m.type = commit ? protocol::control_record_type::commit : protocol::control_record_type::abort;
    m.coordinator_epoch = 0;
    return append(protocol::build_txn_marker_batch(producer_id, 0, m, ts), ts);
  }

  int64_t lso() const {
    return state_.last_stable_offset(l_->log_end_offset(), l_->log_start_offset());
  }
  std::optional<clean_stats> clean(int64_t now, int64_t marker_removal_limit = INT64_MAX) {
    return maybe_clean(*l_, now, lso(), index_, [&] { return marker_removal_limit; });
  }

  log& l() { return *l_; }
  txn_index& index() { return index_; }
  producer_state& state() { return state_; }
  const fs::path& dir() const { return dir_.path(); }

 private:
  int64_t append(std::vector<uint8_t> batch, int64_t ts) {
    append_info info;
    EXPECT_EQ(l_->append_as_leader(batch, 0, ts, &info), append_error::none);
    state_.apply_batches(batch, *l_, index_);
    state_.on_high_watermark(l_->log_end_offset());
    return info.first_offset;
  }

  temp_dir dir_;
  std::unique_ptr<log> l_;
  txn_index index_;
  producer_state state_;
  std::map<int64_t, int32_t> next_seq_;
};

// Offsets of the control batches (transaction markers) in the log.
std::vector<int64_t> marker_offsets(const log& l) {
  std::vector<int64_t> out;
  l.for_each_batch(l.log_start_offset(), [&](const protocol::record_batch_header& h) {
    if (h.is_control()) out.push_back(h.base_offset);
    return true;
  });
  return out;
}

// What a read_committed consumer receives (the Java client's algorithm): the partition's
// answer up to the LSO with its aborted transactions; a listed producer's transactional data
// is dropped from the listed first offset until that producer's ABORT marker; control
// batches are not delivered.
std::vector<stored> read_committed(const log& l, const txn_index& index, int64_t lso) {
  std::vector<stored> out;
  const int64_t start = l.log_start_offset();
  if (start >= lso) return out;
  read_info info;
  EXPECT_TRUE(l.read(start, UINT32_MAX, lso, true, &info));
  auto aborted = aborted_for_fetch(l, index, start, info, lso);
  std::sort(aborted.begin(), aborted.end(),
            [](const aborted_producer& a, const aborted_producer& b) {
              return a.first_offset < b.first_offset;
            });
  size_t next_aborted = 0;
  std::set<int64_t> aborted_producers;
  for (const auto& region : info.regions) {
    std::vector<uint8_t> buf(region.size);
    EXPECT_EQ(
        ::pread(region.file->fd(), buf.data(), buf.size(), static_cast<off_t>(region.position)),
        static_cast<ssize_t>(buf.size()));
    size_t pos = 0;
    while (pos < buf.size()) {
      protocol::record_batch_header h;
      auto batch = std::span(buf).subspan(pos);
      EXPECT_EQ(protocol::validate_batch(batch, &h), protocol::batch_error::none);
      batch = batch.first(h.total_size());
      pos += h.total_size();
      if (h.producer_id >= 0) {
        while (next_aborted < aborted.size() &&
               aborted[next_aborted].first_offset <= h.last_offset()) {
          aborted_producers.insert(aborted[next_aborted++].producer_id);
        }
        if (h.is_control()) {
          auto m = protocol::parse_txn_marker(batch);
          if (m && m->type == protocol::control_record_type::abort) {
            aborted_producers.erase(h.producer_id);
          }
          continue;
        }
        if (h.is_transactional() && aborted_producers.count(h.producer_id)) continue;
      }
      if (h.is_control()) continue;
      std::vector<record> records;
      EXPECT_TRUE(protocol::decode_records(batch, &records));
      for (const auto& r : records) {
        stored x{r.offset, std::nullopt, std::nullopt, h.compression()};
        if (r.key) x.key = std::string(r.key->begin(), r.key->end());
        if (r.value) x.value = std::string(r.value->begin(), r.value->end());
        out.push_back(x);
      }
    }
  }
  return out;
}

std::vector<std::string> values_of(const std::vector<stored>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(*r.key + "=" + r.value.value_or("<null>"));
  return out;
}

// Every entry of the aborted-transaction index still has its ABORT marker in the log.
void expect_every_index_entry_has_its_marker(const log& l, const txn_index& index) {
  const auto markers = marker_offsets(l);
  for (const auto& e : index.entries()) {
    EXPECT_TRUE(std::count(markers.begin(), markers.end(), e.last_offset))
        << "entry of producer " << e.producer_id << " lost its marker at " << e.last_offset;
  }
}

TEST(log_cleaner, removes_aborted_records_and_their_keys_do_not_hide_older_values) {
  txn_log t;
  t.write(-1, {{"k1", "v1"}}, false);
  t.write(5, {{"k1", "aborted"}, {"k2", "aborted"}}, true);
  t.write(6, {{"k3", "committed"}}, true);
  t.write(5, {{"k1", "aborted2"}}, true);
  const int64_t abort_marker = t.end_txn(5, false);
  t.end_txn(6, true);
  ASSERT_EQ(t.index().entries().size(), 1u);
  roll(t.l());

  auto stats = t.clean(kNow + 1000);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->aborted_records_removed, 3);
  EXPECT_EQ(values_of(read_all(t.l())), (std::vector<std::string>{"k1=v1", "k3=committed"}));
  EXPECT_EQ(values_of(read_committed(t.l(), t.index(), t.lso())),
            (std::vector<std::string>{"k1=v1", "k3=committed"}));
  // Markers are kept (first cleaned now); the entry of the aborted transaction went with its data.
  const auto markers = marker_offsets(t.l());
  EXPECT_EQ(markers.size(), 2u);
  EXPECT_TRUE(std::count(markers.begin(), markers.end(), abort_marker));
  EXPECT_TRUE(t.index().entries().empty());
}

TEST(log_cleaner, compacts_committed_transactional_records_by_key) {
  txn_log t;
  const int64_t first = t.write(5, {{"k1", "a1"}, {"k2", "a1"}}, true);
  t.end_txn(5, true);
  t.write(5, {{"k1", "a2"}}, true);
  t.end_txn(5, true);
  t.write(-1, {{"k3", "plain"}}, false);
  roll(t.l());

  auto stats = t.clean(kNow + 1000);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->records_removed, 1);
  EXPECT_EQ(values_of(read_all(t.l())), (std::vector<std::string>{"k2=a1", "k1=a2", "k3=plain"}));
  EXPECT_EQ(values_of(read_committed(t.l(), t.index(), t.lso())),
            (std::vector<std::string>{"k2=a1", "k1=a2", "k3=plain"}));
  // The rewritten batch is still the producer's transactional batch, at its offsets.
  bool found = false;
  t.l().for_each_batch(0, [&](const protocol::record_batch_header& h) {
    if (h.base_offset == first) {
      found = true;
      EXPECT_TRUE(h.is_transactional());
      EXPECT_EQ(h.producer_id, 5);
      EXPECT_EQ(h.records_count, 1);
      EXPECT_EQ(h.last_offset(), first + 1);
    }
    return true;
  });
  EXPECT_TRUE(found);
  EXPECT_EQ(marker_offsets(t.l()).size(), 2u);  // both transactions still have data
}

TEST(log_cleaner, leaves_an_open_transaction_past_the_lso_untouched) {
  txn_log t;
  for (int round = 0; round < 10; ++round) {
    for (int k = 0; k < 4; ++k) {
      t.write(-1, {{"k" + std::to_string(k), "v" + std::to_string(round) + std::string(30, 'x')}},
              false);
    }
  }
  const int64_t open = t.write(5, {{"k0", "open"}}, true);
  for (int round = 10; round < 20; ++round) {
    for (int k = 0; k < 4; ++k) {
      t.write(-1, {{"k" + std::to_string(k), "v" + std::to_string(round) + std::string(30, 'x')}},
              false);
    }
  }
  roll(t.l());
  ASSERT_EQ(t.lso(), open);
  int64_t open_segment_base = 0;
  for (const segment* s : t.l().segments()) {
    if (s->base_offset() <= open) open_segment_base = s->base_offset();
  }
  ASSERT_GT(open_segment_base, 0);
  std::vector<std::string> from_open_segment_before;
  for (const auto& r : read_all(t.l())) {
    if (r.offset >= open_segment_base) {
      from_open_segment_before.push_back(std::to_string(r.offset) + ":" + *r.value);
    }
  }

  auto stats = t.clean(kNow + 1000);
  ASSERT_TRUE(stats);
  EXPECT_LE(stats->end_offset, open);
  EXPECT_GT(stats->records_removed, 0);
  std::vector<std::string> from_open_segment_after;
  for (const auto& r : read_all(t.l())) {
    if (r.offset >= open_segment_base) {
      from_open_segment_after.push_back(std::to_string(r.offset) + ":" + *r.value);
    }
  }
  EXPECT_EQ(from_open_segment_after, from_open_segment_before);

  // Once committed, the transaction's record is compacted like any other.
  t.end_txn(5, true);
  roll(t.l());
  ASSERT_TRUE(t.clean(kNow + 2000));
  for (const auto& r : read_all(t.l())) EXPECT_NE(r.value, "open");
  EXPECT_EQ(read_all(t.l()).size(), 4u);
}

TEST(log_cleaner, keeps_markers_while_their_data_remains_and_removes_them_after_the_horizon) {
  log_config c = compact_config();
  c.min_cleanable_dirty_ratio = 0.01;
  txn_log t(c);
  t.write(5, {{"k1", "c"}}, true);
  const int64_t commit_superseded_later = t.end_txn(5, true);
  t.write(6, {{"k2", "x"}}, true);
  const int64_t abort_marker = t.end_txn(6, false);
  t.write(5, {{"k3", "c"}}, true);
  const int64_t commit_with_data = t.end_txn(5, true);
  t.write(6, {{"k4", "c"}}, true);
  const int64_t last_of_6 = t.end_txn(6, true);
  roll(t.l());

  const int64_t t0 = kNow + 1000;
  ASSERT_TRUE(t.clean(t0));  // removes the aborted record; every marker stays
  EXPECT_EQ(marker_offsets(t.l()), (std::vector<int64_t>{commit_superseded_later, abort_marker,
                                                         commit_with_data, last_of_6}));

  // Half a horizon later the first transaction loses its last record: its marker becomes
  // removable now, the abort marker became removable at t0.
  const int64_t t1 = t0 + kDay / 2;
  t.write(-1, {{"k1", "plain"}}, false);
  roll(t.l());
  ASSERT_TRUE(t.clean(t1));
  EXPECT_EQ(marker_offsets(t.l()).size(), 4u);

  EXPECT_FALSE(t.clean(t0 + kDay - 1));
  auto at_abort_horizon = t.clean(t0 + kDay);
  ASSERT_TRUE(at_abort_horizon);
  EXPECT_EQ(at_abort_horizon->markers_removed, 1);
  EXPECT_EQ(marker_offsets(t.l()),
            (std::vector<int64_t>{commit_superseded_later, commit_with_data, last_of_6}));

  EXPECT_FALSE(t.clean(t1 + kDay - 1));
  auto at_commit_horizon = t.clean(t1 + kDay);
  ASSERT_TRUE(at_commit_horizon);
  EXPECT_EQ(at_commit_horizon->markers_removed, 1);
  // k3's transaction still has data; producer 6's last batch keeps its epoch.
  EXPECT_EQ(marker_offsets(t.l()), (std::vector<int64_t>{commit_with_data, last_of_6}));
  EXPECT_EQ(values_of(read_committed(t.l(), t.index(), t.lso())),
            (std::vector<std::string>{"k3=c", "k4=c", "k1=plain"}));
  expect_every_index_entry_has_its_marker(t.l(), t.index());
}

TEST(log_cleaner, an_index_entry_left_by_an_interrupted_pass_goes_before_its_marker) {
  txn_log t;
  const int64_t first = t.write(6, {{"k2", "x"}}, true);
  const int64_t abort_marker = t.end_txn(6, false);
  t.write(6, {{"k4", "c"}}, true);
  t.end_txn(6, true);
  roll(t.l());
  const auto entry = t.index().entries().at(0);
  ASSERT_EQ(entry.first_offset, first);
  ASSERT_TRUE(t.clean(kNow + 1000));
  ASSERT_TRUE(t.index().entries().empty());
  // A crash after that pass's swap but before it dropped the entry leaves entry + marker.
  ASSERT_TRUE(t.index().append(t.l(), entry));

  auto stats = t.clean(kNow + 1000 + kDay);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->markers_removed, 1);
  const auto markers = marker_offsets(t.l());
  EXPECT_FALSE(std::count(markers.begin(), markers.end(), abort_marker));
  EXPECT_TRUE(t.index().entries().empty());
  txn_index reopened(t.dir());
  reopened.load(t.l());
  EXPECT_TRUE(reopened.entries().empty());
  EXPECT_EQ(values_of(read_committed(t.l(), reopened, t.lso())),
            (std::vector<std::string>{"k4=c"}));
}

TEST(log_cleaner, keeps_markers_at_or_above_the_marker_removal_limit) {
  txn_log t;
  t.write(6, {{"k2", "x"}}, true);
  const int64_t abort_marker = t.end_txn(6, false);
  t.write(6, {{"k4", "c"}}, true);
  t.end_txn(6, true);
  roll(t.l());
  ASSERT_TRUE(t.clean(kNow + 1000));
  ASSERT_TRUE(t.clean(kNow + 1000 + kDay, /*marker_removal_limit=*/abort_marker));
  EXPECT_EQ(marker_offsets(t.l()).size(), 2u);
}

TEST(log_cleaner, producer_state_reloaded_from_the_cleaned_log_is_right) {
  log_config c = compact_config();
  c.min_cleanable_dirty_ratio = 0.01;
  txn_log t(c);
  t.write(5, {{"k1", "c"}}, true);
  t.end_txn(5, true);
  t.write(6, {{"k2", "x"}}, true);
  t.end_txn(6, false);
  t.write(6, {{"k4", "c"}}, true);
  t.end_txn(6, true);
  t.write(7, {{"k5", "x"}}, true);
  t.end_txn(7, false);  // producer 7's last batch: kept, its transaction's data is gone
  t.write(5, {{"k6", "c"}}, true);
  t.write(-1, {{"k1", "plain"}}, false);
  t.end_txn(5, true);
  roll(t.l());
  ASSERT_TRUE(t.clean(kNow + 1000));
  ASSERT_TRUE(t.clean(kNow + 1000 + kDay));
  ASSERT_EQ(marker_offsets(t.l()).size(), 3u);  // 6's commit, 7's abort, 5's last commit

  // A restart without producer-state snapshots replays the cleaned log.
  txn_index index(t.dir());
  index.load(t.l());
  producer_state reloaded(t.dir());
  reloaded.load(t.l(), index);
  EXPECT_EQ(index.entries(), t.index().entries());
  EXPECT_TRUE(index.entries().empty());
  EXPECT_EQ(reloaded.last_stable_offset(t.l().log_end_offset(), t.l().log_start_offset()),
            t.l().log_end_offset());
  for (int64_t pid : {5, 6, 7}) {
    const producer_entry* e = reloaded.find(pid);
    ASSERT_NE(e, nullptr) << pid;
    EXPECT_EQ(e->epoch, 0);
    EXPECT_EQ(e->current_txn_first_offset, -1) << pid;
  }
  EXPECT_EQ(values_of(read_committed(t.l(), index, t.l().log_end_offset())),
            (std::vector<std::string>{"k4=c", "k6=c", "k1=plain"}));
}

TEST(log_cleaner, read_committed_of_a_cleaned_log_returns_exactly_the_committed_records) {
  log_config c = compact_config();
  c.min_cleanable_dirty_ratio = 0.01;
  txn_log t(c);
  std::mt19937 rng(12345);
  // key → (offset, value) of the newest committed or plain record.
  std::map<std::string, std::pair<int64_t, std::string>> newest_committed;
  struct open_txn {
    std::vector<std::pair<int64_t, std::pair<std::string, std::string>>> records;
  };
  std::map<int64_t, open_txn> open;
  for (int step = 0; step < 400; ++step) {
    const int64_t pid = 5 + static_cast<int64_t>(rng() % 3);
    const std::string key = "k" + std::to_string(rng() % 8);
    const std::string value = "s" + std::to_string(step);
    switch (rng() % 4) {
      case 0: {  // plain record
        newest_committed[key] = {t.write(-1, {{key, value}}, false), value};
        break;
      }
      case 1:
      case 2: {  // transactional record
        open[pid].records.push_back({t.write(pid, {{key, value}}, true), {key, value}});
        break;
      }
      case 3: {  // end the producer's transaction
        if (!open.count(pid)) break;
        const bool commit = rng() % 2 == 0;
        t.end_txn(pid, commit);
        if (commit) {
          for (const auto& [offset, kv] : open[pid].records) {
            auto& n = newest_committed[kv.first];
            if (offset > n.first) n = {offset, kv.second};
          }
        }
        open.erase(pid);
        break;
      }
    }
  }
  for (auto& [pid, txn] : open) t.end_txn(pid, false);
  open.clear();
  roll(t.l());
  ASSERT_EQ(t.lso(), t.l().log_end_offset());
  std::vector<std::string> expected;
  {
    std::map<int64_t, std::string> by_offset;
    for (const auto& [key, n] : newest_committed) by_offset[n.first] = key + "=" + n.second;
    for (const auto& [offset, s] : by_offset) expected.push_back(s);
  }
  ASSERT_FALSE(t.index().entries().empty());

  // Before cleaning the reader sees more (older versions) but the newest per key matches.
  ASSERT_TRUE(t.clean(kNow + 1000));
  EXPECT_EQ(values_of(read_committed(t.l(), t.index(), t.lso())), expected);
  EXPECT_EQ(values_of(read_all(t.l())), expected);  // aborted records are gone
  expect_every_index_entry_has_its_marker(t.l(), t.index());
  const size_t markers_before = marker_offsets(t.l()).size();

  auto after_horizon = t.clean(kNow + 1000 + kDay);
  ASSERT_TRUE(after_horizon);
  EXPECT_GT(after_horizon->markers_removed, 0);
  EXPECT_LT(marker_offsets(t.l()).size(), markers_before);
  EXPECT_EQ(values_of(read_committed(t.l(), t.index(), t.lso())), expected);
  EXPECT_EQ(values_of(read_all(t.l())), expected);
  expect_every_index_entry_has_its_marker(t.l(), t.index());
}

// Copies the segment files of `from` to `to`.
void copy_dir(const fs::path& from, const fs::path& to) {
  for (const auto& e : fs::directory_iterator(from)) {
    fs::copy_file(e.path(), to / e.path().filename(), fs::copy_options::overwrite_existing);
  }
}

TEST(log_cleaner, an_interrupted_swap_is_finished_at_open_and_uncommitted_output_dropped) {
  temp_dir cleaned_dir, crashed_dir;
  log_config c = compact_config();
  c.segment_bytes = 400;
  std::map<std::string, std::pair<int64_t, std::string>> newest;
  {
    auto l = open_log(cleaned_dir.path(), c);
    newest = write_updates(*l, 3, 10);
    roll(*l);
    l->close();
  }
  copy_dir(cleaned_dir.path(), crashed_dir.path());
  // Clean the first log with everything merged into segment 0.
  int64_t end = 0;
  {
    log_config merge = c;
    merge.segment_bytes = 1 << 20;
    auto l = open_log(cleaned_dir.path(), merge);
    end = segment_bases(*l).back();
    ASSERT_TRUE(clean(*l, kNow + 1000, l->log_end_offset()));
    ASSERT_EQ(segment_bases(*l).size(), 2u);
    l->close();
  }
  // The crashed copy: the committed swap file exists, some old segments are already gone
  // (the crash hit while they were being deleted), plus an uncommitted .cleaned leftover.
  fs::copy_file(cleaned_dir.path() / segment_file_name(0, kLogSuffix),
                crashed_dir.path() / swap_file_name(0, end));
  fs::remove(crashed_dir.path() / segment_file_name(0, kLogSuffix));
  fs::remove(crashed_dir.path() / segment_file_name(0, kIndexSuffix));
  fs::remove(crashed_dir.path() / std::string(kCleanShutdownFile));
  {
    std::ofstream junk(crashed_dir.path() / (segment_file_name(end, kLogSuffix) + ".cleaned"));
    junk << "partial";
  }
  auto l = open_log(crashed_dir.path(), c);
  EXPECT_EQ(segment_bases(*l), (std::vector<int64_t>{0, end}));
  auto records = read_all(*l);
  ASSERT_EQ(records.size(), 3u);
  for (const auto& r : records) EXPECT_EQ(r.offset, newest[*r.key].first);
  for (const auto& e : fs::directory_iterator(crashed_dir.path())) {
    auto name = e.path().filename().string();
    EXPECT_FALSE(name.ends_with(".swap") || name.ends_with(".cleaned")) << name;
  }
}

TEST(log_cleaner, uncommitted_cleaned_file_leaves_the_original_log_intact) {
  temp_dir dir;
  log_config c = compact_config();
  {
    auto l = open_log(dir.path(), c);
    write_updates(*l, 3, 10);
    roll(*l);
  }  // no close(): unclean
  {
    std::ofstream junk(dir.path() / (segment_file_name(0, kLogSuffix) + ".cleaned"));
    junk << "partial";
  }
  auto l = open_log(dir.path(), c);
  EXPECT_EQ(read_all(*l).size(), 30u);
  EXPECT_FALSE(fs::exists(dir.path() / (segment_file_name(0, kLogSuffix) + ".cleaned")));
}

TEST(log_cleaner, checkpoint_round_trips_and_rejects_garbage) {
  temp_dir dir;
  cleaner_checkpoint cp;
  cp.first_dirty_offset = 42;
  cp.tombstone_ranges = {{10, 1000}, {42, 2000}};
  cp.marker_ranges = {{3, 9, 1500}, {1, 40, 2500}};
  std::string error;
  ASSERT_TRUE(write_cleaner_checkpoint(dir.path(), cp, &error)) << error;
  auto back = read_cleaner_checkpoint(dir.path());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->first_dirty_offset, 42);
  ASSERT_EQ(back->tombstone_ranges.size(), 2u);
  EXPECT_EQ(back->tombstone_ranges[1].end_offset, 42);
  EXPECT_EQ(back->tombstone_ranges[1].cleaned_at_ms, 2000);
  ASSERT_EQ(back->marker_ranges.size(), 2u);
  EXPECT_EQ(back->marker_ranges[0].first_offset, 3);
  EXPECT_EQ(back->marker_ranges[0].last_offset, 9);
  EXPECT_EQ(back->marker_ranges[1].removable_at_ms, 2500);
  // A version 0 file (before marker ranges) is still read.
  ASSERT_TRUE(write_file_atomically(dir.path() / std::string(kCleanerCheckpointFile),
                                    "0\n7\n1\n9 1\n", &error));
  back = read_cleaner_checkpoint(dir.path());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->first_dirty_offset, 7);
  EXPECT_TRUE(back->marker_ranges.empty());
  ASSERT_TRUE(write_file_atomically(dir.path() / std::string(kCleanerCheckpointFile), "0\n5\n2\n9 1\n", &error));
  EXPECT_FALSE(read_cleaner_checkpoint(dir.path()));
}

}  // namespace
}  // namespace varve::storage
