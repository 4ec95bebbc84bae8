// Writing a whole file so that readers see the old content or the new, never a torn one:
// the bytes go to `<path>.tmp.<pid>` beside the target, which is flushed to disk and renamed
// over `path` on commit(), or removed if the writer dies before.
#pragma once

#include <cstddef>
#include <string>

namespace mixlora::io {

class AtomicFile {
 public:
  // Creates the temporary file; RuntimeError naming `path` on failure.
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // RuntimeError naming `path` on failure (disk full, quota, file size limit).
  void write(const void* data, size_t size);
  // fsync, rename into place, fsync the directory (best effort).
  void commit();

 private:
  std::string path_;
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// The whole of `content` through an AtomicFile.
void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace mixlora::io
