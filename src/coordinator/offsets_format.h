#pragma once
// Records of the internal topic __consumer_offsets (docs/format/consumer-offsets.md).
//
// Committed offset: key = version int16 (1) | group string | topic string | partition int32;
//                   value = version int16 (3) | offset int64 | leader_epoch int32 |
//                           metadata string | commit_timestamp int64.
// A null value (tombstone) deletes the offset. Strings are int16 length + UTF-8 bytes.
// Keys of version 2 are group metadata records: this build does not write them and skips
// them when loading.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace varve::coordinator {

inline constexpr std::string_view kOffsetsTopic = "__consumer_offsets";
inline constexpr int16_t kOffsetCommitKeyVersion = 1;
inline constexpr int16_t kOffsetCommitValueVersion = 3;
inline constexpr int16_t kGroupMetadataKeyVersion = 2;

// Java's String.hashCode over the UTF-16 code units of `s` (decoded from UTF-8; invalid
// sequences count as U+FFFD, as Java's decoder does).
int32_t java_string_hash(std::string_view s);
// Kafka's group → __consumer_offsets partition: Utils.abs(hashCode) % partitions, where
// Utils.abs is `h & 0x7fffffff`.
int32_t offsets_partition_for(std::string_view group_id, int32_t num_partitions);

struct offset_key {
  std::string group;
  std::string topic;
  int32_t partition = 0;
};

struct offset_value {
  int64_t offset = -1;
  int32_t leader_epoch = -1;
  std::string metadata;
  int64_t commit_timestamp = -1;
  int64_t expire_timestamp = -1;  // only in value version 1
};

std::vector<uint8_t> encode_offset_key(const offset_key& k);
std::vector<uint8_t> encode_offset_value(const offset_value& v);

// Which kind of record a key is: an offset commit (versions 0 and 1), group metadata
// (version 2), or something this build does not know.
enum class key_kind { offset_commit, group_metadata, unknown };
// Decodes a key; `*out` is filled for offset commits. nullopt if malformed.
std::optional<key_kind> decode_key(std::span<const uint8_t> bytes, offset_key* out);
// Decodes value versions 0-4 (4 is flexible: tagged fields after the fixed ones are skipped).
std::optional<offset_value> decode_offset_value(std::span<const uint8_t> bytes);

}  // namespace varve::coordinator
