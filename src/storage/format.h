#pragma once
// On-disk names and sizes shared by the writers and readers of a partition directory.
// The formats themselves are specified in docs/format/segment.md, docs/format/index.md and
// docs/format/leader-epoch-checkpoint.md; change those documents together with this file.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace varve::storage {

// Segment file suffixes. A segment is named by its base offset, zero-padded to 20 digits.
inline constexpr std::string_view kLogSuffix = ".log";
inline constexpr std::string_view kIndexSuffix = ".index";
inline constexpr std::string_view kTimeIndexSuffix = ".timeindex";
// Appended to a file name before it is unlinked (retention, truncation).
inline constexpr std::string_view kDeletedSuffix = ".deleted";
// Temporary files written before an atomic rename.
inline constexpr std::string_view kTmpSuffix = ".tmp";
inline constexpr int kSegmentNameDigits = 20;

// Written by log::close() after a full flush; its presence at open means the files are
// consistent and need no recovery scan.
inline constexpr std::string_view kCleanShutdownFile = ".kafka_cleanshutdown";
inline constexpr std::string_view kLeaderEpochCheckpointFile = "leader-epoch-checkpoint";
inline constexpr std::string_view kLogStartOffsetFile = "log-start-offset";
inline constexpr int kCheckpointVersion = 0;

// .index entry: int32 relative offset (offset - segment base), int32 position in the .log.
inline constexpr size_t kOffsetIndexEntrySize = 8;
// .timeindex entry: int64 timestamp, int32 relative offset.
inline constexpr size_t kTimeIndexEntrySize = 12;

}  // namespace varve::storage
