#pragma once
// Helpers for the unit tests (*_test.cc) only; nothing in the broker includes this header.
//
// test_util::temp_dir — a new, empty directory `<system temp dir>/<prefix>-XXXXXX` made by
// mkdtemp when constructed (std::runtime_error if it cannot be made), removed with all its
// contents when destroyed. Not copyable: one owner removes it once.
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace varve::test_util {

class temp_dir {
 public:
  explicit temp_dir(std::string_view prefix = "varve-test") {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + tmpl + " failed");
    }
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace varve::test_util
