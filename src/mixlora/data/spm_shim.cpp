// C API around libsentencepiece, built as its own shared object (libmixlora_spm_shim.so).
//
// Debian's libsentencepiece exports an embedded protobuf 3.14 that crashes next to LibTorch's
// protobuf 3.21 in one link namespace, so tokenizer.cpp loads this library with
// dlmopen(LM_ID_NEWLM): it gets its own libsentencepiece, libstdc++ and libc. Hence the rules
// here: only C types cross the boundary, no exception escapes, and memory is never handed over
// (each namespace has its own malloc) - results go into buffers the caller owns.
//
// Buffer convention: functions that fill a buffer return the size they need; when that exceeds
// the capacity given, the buffer holds a truncated prefix and the caller retries with more room.
// Error text is NUL-terminated and truncated to fit err_cap.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#define MIXLORA_SPM_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

// Bumped when a signature below changes, so the loader rejects a stale shim from another build.
constexpr int32_t kAbiVersion = 1;

struct Handle {
  sentencepiece::SentencePieceProcessor sp;
};

const sentencepiece::SentencePieceProcessor& proc(const void* handle) {
  return static_cast<const Handle*>(handle)->sp;
}

void set_error(char* err, size_t err_cap, const char* text) {
  if (err == nullptr || err_cap == 0) return;
  const size_t n = std::min(std::strlen(text), err_cap - 1);
  std::memcpy(err, text, n);
  err[n] = '\0';
}

bool valid_id(const void* handle, int32_t id) {
  return id >= 0 && id < proc(handle).GetPieceSize();
}

}  // namespace

MIXLORA_SPM_EXPORT int32_t mixlora_spm_abi_version() { return kAbiVersion; }

// Returns an opaque handle, or null with the reason in err.
MIXLORA_SPM_EXPORT void* mixlora_spm_load(const char* path, char* err, size_t err_cap) {
  try {
    auto handle = std::make_unique<Handle>();
    const auto status = handle->sp.Load(path);
    if (!status.ok()) {
      set_error(err, err_cap, status.ToString().c_str());
      return nullptr;
    }
    return handle.release();
  } catch (const std::exception& e) {
    set_error(err, err_cap, e.what());
  } catch (...) {
    set_error(err, err_cap, "unknown exception while loading the model");
  }
  return nullptr;
}

MIXLORA_SPM_EXPORT void mixlora_spm_free(void* handle) { delete static_cast<Handle*>(handle); }

// Encodes len bytes of UTF-8 text (no BOS/EOS). Returns the id count, or -1 with err set.
MIXLORA_SPM_EXPORT int64_t mixlora_spm_encode(const void* handle, const char* text, size_t len,
                                              int32_t* ids, size_t cap, char* err, size_t err_cap) {
  try {
    std::vector<int> out;
    const auto status = proc(handle).Encode(absl::string_view(text, len), &out);
    if (!status.ok()) {
      set_error(err, err_cap, status.ToString().c_str());
      return -1;
    }
    std::copy_n(out.begin(), std::min(out.size(), cap), ids);
    return static_cast<int64_t>(out.size());
  } catch (const std::exception& e) {
    set_error(err, err_cap, e.what());
  } catch (...) {
    set_error(err, err_cap, "unknown exception while encoding");
  }
  return -1;
}

// Decodes ids to UTF-8 (not NUL-terminated). Returns the byte count, or -1 with err set.
MIXLORA_SPM_EXPORT int64_t mixlora_spm_decode(const void* handle, const int32_t* ids, size_t n,
                                              char* text, size_t cap, char* err, size_t err_cap) {
  try {
    std::vector<int> in(ids, ids + n);
    for (const int id : in) {
      // Checked here: sentencepiece indexes its piece table without a bounds check.
      if (!valid_id(handle, id)) {
        set_error(err, err_cap,
                  ("token id " + std::to_string(id) + " is outside the vocabulary of " +
                   std::to_string(proc(handle).GetPieceSize()) + " pieces")
                      .c_str());
        return -1;
      }
    }
    std::string out;
    const auto status = proc(handle).Decode(in, &out);
    if (!status.ok()) {
      set_error(err, err_cap, status.ToString().c_str());
      return -1;
    }
    std::memcpy(text, out.data(), std::min(out.size(), cap));
    return static_cast<int64_t>(out.size());
  } catch (const std::exception& e) {
    set_error(err, err_cap, e.what());
  } catch (...) {
    set_error(err, err_cap, "unknown exception while decoding");
  }
  return -1;
}

MIXLORA_SPM_EXPORT int32_t mixlora_spm_piece_size(const void* handle) {
  return proc(handle).GetPieceSize();
}

// Copies the piece of id (not NUL-terminated); returns its byte length, or -1 if id is invalid.
MIXLORA_SPM_EXPORT int64_t mixlora_spm_id_to_piece(const void* handle, int32_t id, char* piece,
                                                   size_t cap) {
  if (!valid_id(handle, id)) return -1;
  const std::string& p = proc(handle).IdToPiece(id);
  std::memcpy(piece, p.data(), std::min(p.size(), cap));
  return static_cast<int64_t>(p.size());
}

// Returns the id of the piece, or -1 when the vocabulary has no such piece. (SentencePiece
// itself answers unk_id for unknown pieces, which cannot be told apart from "<unk>".)
MIXLORA_SPM_EXPORT int32_t mixlora_spm_piece_to_id(const void* handle, const char* piece,
                                                   size_t len) {
  try {
    const absl::string_view p(piece, len);
    const int id = proc(handle).PieceToId(p);
    if (proc(handle).IsUnknown(id) && proc(handle).IdToPiece(id) != std::string(p)) return -1;
    return id;
  } catch (...) {
    return -1;
  }
}

// Reserved ids; -1 when the model defines none.
MIXLORA_SPM_EXPORT int32_t mixlora_spm_bos_id(const void* handle) { return proc(handle).bos_id(); }
MIXLORA_SPM_EXPORT int32_t mixlora_spm_eos_id(const void* handle) { return proc(handle).eos_id(); }
MIXLORA_SPM_EXPORT int32_t mixlora_spm_unk_id(const void* handle) { return proc(handle).unk_id(); }
MIXLORA_SPM_EXPORT int32_t mixlora_spm_pad_id(const void* handle) { return proc(handle).pad_id(); }

// 1 for a byte-fallback piece ("<0xE2>"), 0 otherwise (also for an invalid id).
MIXLORA_SPM_EXPORT int32_t mixlora_spm_is_byte(const void* handle, int32_t id) {
  return valid_id(handle, id) && proc(handle).IsByte(id) ? 1 : 0;
}
