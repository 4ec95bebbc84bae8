// Graceful stop on SIGINT / SIGTERM: the handler only records the signal; the training loop
// polls stop_signal() between optimizer steps, saves checkpoints and throws Interrupted, which
// the apps turn into exit code 128 + signal (130 for SIGINT, 143 for SIGTERM).
#pragma once

#include <stdexcept>
#include <string>

namespace mixlora::common {

// Installs the recording handlers for SIGINT and SIGTERM (a second signal of either kind ends
// the process at once, for a user who does not want to wait), and ignores SIGXFSZ so that
// exceeding a file-size limit is an ordinary write error (EFBIG) instead of a silent kill.
void install_stop_handlers();

// The signal received since install_stop_handlers(), or 0.
int stop_signal();

// Thrown after a requested stop has been handled (checkpoints saved).
class Interrupted : public std::runtime_error {
 public:
  Interrupted(int signal, const std::string& message)
      : std::runtime_error(message), signal_(signal) {}
  int exit_code() const { return 128 + signal_; }

 private:
  int signal_;
};

}  // namespace mixlora::common
