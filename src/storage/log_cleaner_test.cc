#include "storage/log_cleaner.h"

#include <unistd.h>

#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "storage/file_util.h"
#include "storage/format.h"
#include "storage/log.h"
#include "storage/segment.h"

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

// Every record in the log, in offset order, read through log::read as a fetch would.
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

  auto stats = maybe_clean(*l, kNow + 1000, leo);
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
  EXPECT_FALSE(maybe_clean(*l, kNow + 2000, leo));
}

TEST(log_cleaner, never_cleans_the_active_segment_or_a_log_without_compaction) {
  temp_dir dir;
  log_config c = compact_config();
  c.segment_bytes = 1 << 20;
  auto l = open_log(dir.path(), c);
  write_updates(*l, 5, 5);  // all in the active segment
  EXPECT_FALSE(maybe_clean(*l, kNow + 1000, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 25u);

  temp_dir dir2;
  log_config d = compact_config();
  d.compact = false;
  d.delete_retention = true;
  auto l2 = open_log(dir2.path(), d);
  write_updates(*l2, 5, 5);
  roll(*l2);
  EXPECT_FALSE(maybe_clean(*l2, kNow + 1000, l2->log_end_offset()));
  EXPECT_EQ(read_all(*l2).size(), 25u);
}

TEST(log_cleaner, removes_tombstones_only_after_delete_retention_ms) {
  temp_dir dir;
  auto l = open_log(dir.path(), compact_config());
  write_updates(*l, 5, 3);
  const int64_t tomb = append(*l, {{std::string("k0"), std::nullopt}});
  roll(*l);
  const int64_t t0 = kNow + 1000;
  ASSERT_TRUE(maybe_clean(*l, t0, l->log_end_offset()));
  auto records = read_all(*l);
  ASSERT_EQ(records.size(), 5u);  // k1..k4 and the tombstone of k0
  EXPECT_EQ(records.back().offset, tomb);
  EXPECT_FALSE(records.back().value);

  // Not yet due: no dirty data and the tombstone's horizon has not passed.
  EXPECT_FALSE(maybe_clean(*l, t0 + kDay - 1, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 5u);

  auto stats = maybe_clean(*l, t0 + kDay, l->log_end_offset());
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
  EXPECT_FALSE(maybe_clean(*l, kNow + 5'000, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 16u);
  ASSERT_TRUE(maybe_clean(*l, kNow + 10'001, l->log_end_offset()));
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
  ASSERT_TRUE(maybe_clean(*l, kNow + 1000, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 40u);

  // A little new dirty data: well below a 0.9 dirty ratio.
  append(*l, {{std::string("key0"), std::string("new")}}, kNow + 2000);
  roll(*l, kNow + 60 * kDay);
  EXPECT_FALSE(maybe_clean(*l, kNow + 3000, l->log_end_offset()));
  EXPECT_EQ(read_all(*l).size(), 41u);

  // max.compaction.lag.ms forces the pass regardless of the ratio.
  c.max_compaction_lag_ms = 500;
  l->update_config(c);
  auto stats = maybe_clean(*l, kNow + 3000, l->log_end_offset());
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
  auto stats = maybe_clean(*l, kNow + 1000, l->log_end_offset());
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
    ASSERT_TRUE(maybe_clean(*l, kNow + 1000, l->log_end_offset()));
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
  ASSERT_TRUE(maybe_clean(*l, kNow + 1000, l->log_end_offset()));
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
    ASSERT_TRUE(maybe_clean(*l, kNow + 1000, l->log_end_offset()));
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
  std::string error;
  ASSERT_TRUE(write_cleaner_checkpoint(dir.path(), cp, &error)) << error;
  auto back = read_cleaner_checkpoint(dir.path());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->first_dirty_offset, 42);
  ASSERT_EQ(back->tombstone_ranges.size(), 2u);
  EXPECT_EQ(back->tombstone_ranges[1].end_offset, 42);
  EXPECT_EQ(back->tombstone_ranges[1].cleaned_at_ms, 2000);
  ASSERT_TRUE(write_file_atomically(dir.path() / std::string(kCleanerCheckpointFile), "0\n5\n2\n9 1\n", &error));
  EXPECT_FALSE(read_cleaner_checkpoint(dir.path()));
}

}  // namespace
}  // namespace varve::storage
