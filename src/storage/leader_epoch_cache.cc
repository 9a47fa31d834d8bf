#include "storage/leader_epoch_cache.h"

#include <sstream>

#include "common/log.h"
#include "storage/file_util.h"
#include "storage/format.h"

namespace varve::storage {

void leader_epoch_cache::load() {
  entries_.clear();
  auto text = read_small_file(file_);
  if (!text) return;
  std::istringstream in(*text);
  int version = -1;
  int64_t count = -1;
  std::vector<epoch_entry> entries;
  bool ok = static_cast<bool>(in >> version >> count) && version == kCheckpointVersion &&
            count >= 0;
  for (int64_t i = 0; ok && i < count; ++i) {
    epoch_entry e;
    ok = static_cast<bool>(in >> e.epoch >> e.start_offset) && e.epoch >= 0 &&
         e.start_offset >= 0 &&
         (entries.empty() ||
          (e.epoch > entries.back().epoch && e.start_offset >= entries.back().start_offset));
    if (ok) entries.push_back(e);
  }
  std::string rest;
  if (ok && (in >> rest)) ok = false;  // trailing garbage
  if (!ok) {
    VLOG_ERROR("storage") << "malformed " << file_.string() << "; ignoring its epochs";
    return;
  }
  entries_ = std::move(entries);
}

bool leader_epoch_cache::write() {
  std::ostringstream out;
  out << kCheckpointVersion << "\n" << entries_.size() << "\n";
  for (const auto& e : entries_) out << e.epoch << " " << e.start_offset << "\n";
  std::string error;
  if (!write_file_atomically(file_, out.str(), &error)) {
    VLOG_ERROR("storage") << "cannot write leader epoch checkpoint: " << error;
    return false;
  }
  return true;
}

bool leader_epoch_cache::assign(int32_t epoch, int64_t start_offset) {
  if (epoch < 0 || epoch <= latest_epoch()) return true;
  while (!entries_.empty() && entries_.back().start_offset > start_offset) entries_.pop_back();
  // An older epoch with no batches (same start offset) is superseded by the new one.
  while (!entries_.empty() && entries_.back().start_offset == start_offset) entries_.pop_back();
  entries_.push_back({epoch, start_offset});
  return write();
}

bool leader_epoch_cache::truncate_from_end(int64_t end_offset) {
  size_t n = entries_.size();
  while (!entries_.empty() && entries_.back().start_offset >= end_offset) entries_.pop_back();
  return n == entries_.size() || write();
}

bool leader_epoch_cache::truncate_from_start(int64_t start_offset) {
  // Index of the last entry starting at or before start_offset.
  size_t keep_from = 0;
  bool found = false;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].start_offset <= start_offset) {
      keep_from = i;
      found = true;
    }
  }
  if (!found) return true;
  auto before = entries_;
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<ptrdiff_t>(keep_from));
  entries_.front().start_offset = start_offset;
  return before == entries_ || write();
}

bool leader_epoch_cache::clear() {
  if (entries_.empty() && !std::filesystem::exists(file_)) return true;
  entries_.clear();
  return write();
}

std::pair<int32_t, int64_t> leader_epoch_cache::end_offset_for(int32_t requested,
                                                               int64_t log_end_offset) const {
  if (requested < 0 || entries_.empty()) return {-1, -1};
  if (requested == latest_epoch()) return {requested, log_end_offset};
  if (requested > latest_epoch()) return {-1, -1};
  // First entry with epoch > requested exists because requested < latest.
  size_t higher = 0;
  while (entries_[higher].epoch <= requested) ++higher;
  if (higher == 0) return {requested, entries_[0].start_offset};
  return {entries_[higher - 1].epoch, entries_[higher].start_offset};
}

std::optional<int32_t> leader_epoch_cache::epoch_for_offset(int64_t offset) const {
  std::optional<int32_t> epoch;
  for (const auto& e : entries_) {
    if (e.start_offset > offset) break;
    epoch = e.epoch;
  }
  return epoch;
}

}  // namespace varve::storage
