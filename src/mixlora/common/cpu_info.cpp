#include "mixlora/common/cpu_info.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace mixlora::common {

namespace {

// The value after "key<tabs>: " on a /proc/cpuinfo line, or nothing when the line is another key.
bool read_field(const std::string& line, const std::string& key, std::string& value) {
  if (line.rfind(key, 0) != 0) return false;
  const auto colon = line.find(':');
  if (colon == std::string::npos || line.find_first_not_of(" \t", key.size()) != colon)
    return false;
  value = line.substr(std::min(line.size(), colon + 2));
  return true;
}

CpuInfo read_cpu_info() {
  CpuInfo info;
  info.model = "unknown";
  std::ifstream in("/proc/cpuinfo");
  bool have_model = false, have_flags = false;
  for (std::string line, value; std::getline(in, line) && !(have_model && have_flags);) {
    if (!have_model && read_field(line, "model name", value)) {
      info.model = value;
      have_model = true;
    } else if (!have_flags && read_field(line, "flags", value)) {
      std::istringstream words(value);
      for (std::string w; words >> w;) info.flags.push_back(w);
      have_flags = true;
    }
  }
  return info;
}

}  // namespace

bool CpuInfo::has(const std::string& flag) const {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

std::vector<std::string> CpuInfo::simd_flags() const {
  std::vector<std::string> out;
  for (const auto& f : flags) {
    if (f == "avx" || f == "avx2" || f == "fma" || f == "f16c" || f.rfind("avx512", 0) == 0 ||
        f.rfind("amx", 0) == 0 || f == "avx_vnni") {
      out.push_back(f);
    }
  }
  return out;
}

const CpuInfo& cpu_info() {
  static const CpuInfo info = read_cpu_info();
  return info;
}

}  // namespace mixlora::common
