#include "mixlora/io/atomic_file.h"

#include "mixlora/common/error.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <utility>

namespace mixlora::io {

AtomicFile::AtomicFile(const std::string& path)
    : path_(path),
      temp_(fmt::format("{}.tmp.{}", path, ::getpid())),
      fd_(::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) {
  if (fd_ < 0)
    fail_runtime("{}: cannot create temporary file {}: {}", path_, temp_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, bytes, std::min<size_t>(size, 1u << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      fail_runtime("{}: cannot write {}: {}", path_, temp_, std::strerror(n < 0 ? errno : EIO));
    bytes += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0)
    fail_runtime("{}: cannot fsync {}: {}", path_, temp_, std::strerror(errno));
  if (::close(std::exchange(fd_, -1)) != 0) {
    fail_runtime("{}: cannot close {}: {}", path_, temp_, std::strerror(errno));
  }
  if (std::rename(temp_.c_str(), path_.c_str()) != 0) {
    fail_runtime("{}: cannot rename {} into place: {}", path_, temp_, std::strerror(errno));
  }
  committed_ = true;
  // Makes the rename itself durable; best effort, the file is already complete.
  const auto slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path_.substr(0, slash);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

void write_file_atomically(const std::string& path, const std::string& content) {
  AtomicFile file(path);
  file.write(content.data(), content.size());
  file.commit();
}

}  // namespace mixlora::io
