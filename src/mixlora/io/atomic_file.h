// Writing a whole file so that readers see the old content or the new, never a torn one.
#pragma once

#include <string>

namespace mixlora::io {

// Writes `path`.tmp.<pid>, flushes it to disk, renames it over `path`. On failure the temp file
// is removed and a RuntimeError names `path`.
void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace mixlora::io
