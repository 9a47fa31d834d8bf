#pragma once
// Human output: a table with an upper-case header row and columns padded to their widest
// cell, separated by two spaces (the layout of Kafka's and rpk's tools).
#include <ostream>
#include <string>
#include <vector>

namespace varve::cli {

class table {
 public:
  explicit table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  // A row must have as many cells as there are headers (asserted).
  void add_row(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// "1,2,3" for a list of ids.
std::string join_ints(const std::vector<int32_t>& v, const char* sep = ",");

}  // namespace varve::cli
