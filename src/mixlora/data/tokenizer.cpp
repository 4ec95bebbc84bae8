#include "mixlora/data/tokenizer.h"

#include "mixlora/common/build_info.h"
#include "mixlora/common/error.h"
#include "mixlora/data/hf_tokenizer.h"
#include "mixlora/io/json_file.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>

namespace mixlora::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kShimName = "libmixlora_spm_shim.so";
// Must equal kAbiVersion in spm_shim.cpp; a mismatch means a stale shim from another build.
constexpr int32_t kShimAbiVersion = 1;

// The shim's C functions; the signatures mirror spm_shim.cpp.
struct ShimApi {
  int32_t (*abi_version)();
  void* (*load)(const char*, char*, size_t);
  void (*free)(void*);
  int64_t (*encode)(const void*, const char*, size_t, int32_t*, size_t, char*, size_t);
  int64_t (*decode)(const void*, const int32_t*, size_t, char*, size_t, char*, size_t);
  int32_t (*piece_size)(const void*);
  int64_t (*id_to_piece)(const void*, int32_t, char*, size_t);
  int32_t (*piece_to_id)(const void*, const char*, size_t);
  int32_t (*bos_id)(const void*);
  int32_t (*eos_id)(const void*);
  int32_t (*unk_id)(const void*);
  int32_t (*pad_id)(const void*);
  int32_t (*is_byte)(const void*, int32_t);
};

struct Shim {
  ShimApi api{};
  std::string error;  // why loading failed; empty on success
};

template <typename Fn>
bool resolve(void* lib, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  return fn != nullptr;
}

// Returns the name of the first missing symbol, or nullptr when all resolved.
const char* resolve_all(void* lib, ShimApi& api) {
#define MIXLORA_RESOLVE(field) \
  if (!resolve(lib, "mixlora_spm_" #field, api.field)) return "mixlora_spm_" #field
  MIXLORA_RESOLVE(abi_version);
  MIXLORA_RESOLVE(load);
  MIXLORA_RESOLVE(free);
  MIXLORA_RESOLVE(encode);
  MIXLORA_RESOLVE(decode);
  MIXLORA_RESOLVE(piece_size);
  MIXLORA_RESOLVE(id_to_piece);
  MIXLORA_RESOLVE(piece_to_id);
  MIXLORA_RESOLVE(bos_id);
  MIXLORA_RESOLVE(eos_id);
  MIXLORA_RESOLVE(unk_id);
  MIXLORA_RESOLVE(pad_id);
  MIXLORA_RESOLVE(is_byte);
#undef MIXLORA_RESOLVE
  return nullptr;
}

Shim load_shim() {
  Shim shim;
  std::vector<std::string> tried;
  for (const auto& path : detail::spm_shim_candidates()) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      tried.push_back(path + " (missing)");
      continue;
    }
    // A fresh link namespace keeps libsentencepiece's protobuf away from LibTorch's. The
    // library is never closed: namespaces are few (16) and unloading them is fragile.
    void* lib = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      tried.push_back(fmt::format("{} ({})", path, dlerror()));
      continue;
    }
    if (const char* missing = resolve_all(lib, shim.api)) {
      tried.push_back(fmt::format("{} (no symbol {})", path, missing));
      continue;
    }
    const int32_t abi = shim.api.abi_version();
    if (abi != kShimAbiVersion) {
      tried.push_back(fmt::format("{} (ABI version {}, need {})", path, abi, kShimAbiVersion));
      continue;
    }
    return shim;
  }
  shim.error = fmt::format(
      "cannot load the SentencePiece shim {}; tried {}; hint: set MIXLORA_SPM_SHIM to the {} "
      "built with this program (build/lib), or give token ids instead of text (--prompt-ids)",
      kShimName, fmt::join(tried, ", "), kShimName);
  return shim;
}

// Loaded on first use, once per process; a failure is remembered and reported on every use.
const ShimApi& shim() {
  static const Shim loaded = load_shim();
  if (!loaded.error.empty()) throw RuntimeError(loaded.error);
  return loaded.api;
}

// Status text from the shim may span lines; messages are one line.
std::string one_line(const char* text) {
  std::string s(text);
  std::replace(s.begin(), s.end(), '\n', ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

constexpr size_t kErrorCap = 1024;

}  // namespace

namespace detail {

std::vector<std::string> spm_shim_candidates() {
  const char* env = std::getenv("MIXLORA_SPM_SHIM");
  if (env != nullptr && *env != '\0') {
    fs::path path(env);
    std::error_code ec;
    if (fs::is_directory(path, ec)) path /= kShimName;
    return {path.string()};
  }
  std::vector<std::string> paths;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    paths.push_back((exe.parent_path() / ".." / "lib" / kShimName).lexically_normal().string());
    paths.push_back((exe.parent_path() / kShimName).string());
  }
  const std::string build =
      (fs::path(MIXLORA_SHIM_BUILD_DIR) / kShimName).lexically_normal().string();
  if (std::find(paths.begin(), paths.end(), build) == paths.end()) paths.push_back(build);
  return paths;
}

}  // namespace detail

struct Tokenizer::State {
  const ShimApi* api = nullptr;
  void* handle = nullptr;
  // Set for tokenizer.json; then api/handle stay null.
  std::shared_ptr<const hf::HfTokenizer> hf;
  bool clean_up_spaces = false;  // tokenizer_config.json clean_up_tokenization_spaces
  std::string path;
  int64_t piece_count = 0;  // SentencePiece pieces: ids [0, piece_count)
  int64_t vocab_size = 0;   // pieces plus added tokens beyond them
  int64_t bos = -1, eos = -1, unk = -1, pad = -1;
  bool add_bos = true, add_eos = false;  // HF LlamaTokenizer defaults
  std::map<std::string, int64_t> added_by_content;
  std::map<int64_t, std::string> added_by_id;

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    if (handle != nullptr) api->free(handle);
  }

  std::optional<int64_t> find(const std::string& content) const {
    // Added tokens first, as in HF: they may shadow a piece with the same text.
    if (auto it = added_by_content.find(content); it != added_by_content.end()) return it->second;
    if (hf) return hf->token_to_id(content);
    const int32_t id = api->piece_to_id(handle, content.data(), content.size());
    if (id >= 0) return id;
    return std::nullopt;
  }

  void add_token(const std::string& content, int64_t id, const std::string& where) {
    if (id < 0) fail_input("{}: added token \"{}\": id must be >= 0, got {}", where, content, id);
    added_by_content[content] = id;
    added_by_id[id] = content;
  }
};

Tokenizer::Tokenizer(std::shared_ptr<const State> state) : state_(std::move(state)) {}

namespace {

// A special token in a HF config: "</s>", {"content": "</s>", ...} (AddedToken) or null/absent.
std::optional<std::string> token_content(const nlohmann::json& config, const std::string& key,
                                         const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) return content->get<std::string>();
  }
  fail_input("{}: {}: expected a token string or an object with a \"content\" string, got {}",
             where, key, io::describe(*it));
}

void apply_special_tokens(Tokenizer::State& state, const nlohmann::json& config,
                          const std::string& where) {
  const std::pair<const char*, int64_t*> fields[] = {{"bos_token", &state.bos},
                                                     {"eos_token", &state.eos},
                                                     {"unk_token", &state.unk},
                                                     {"pad_token", &state.pad}};
  for (const auto& [key, id] : fields) {
    const auto content = token_content(config, key, where);
    if (!content) continue;
    const auto found = state.find(*content);
    if (!found) {
      fail_input("{}: {}: token \"{}\" is in neither {} nor the added tokens", where, key, *content,
                 state.path);
    }
    *id = *found;
  }
}

// tokenizer_config.json "added_tokens_decoder": {"32000": {"content": "<pad>", ...}, ...}
void apply_added_tokens_decoder(Tokenizer::State& state, const nlohmann::json& config,
                                const std::string& where) {
  auto it = config.find("added_tokens_decoder");
  if (it == config.end() || it->is_null()) return;
  if (!it->is_object()) {
    fail_input("{}: added_tokens_decoder: expected an object, got {}", where, io::describe(*it));
  }
  for (const auto& [key, value] : it->items()) {
    const std::string field = "added_tokens_decoder." + key;
    size_t used = 0;
    int64_t id = -1;
    try {
      id = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != key.size()) fail_input("{}: {}: key is not a token id", where, field);
    const auto content = token_content(it.value(), key, where + ": added_tokens_decoder");
    if (!content) fail_input("{}: {}: missing \"content\"", where, field);
    state.add_token(*content, id, where);
  }
}

nlohmann::json read_json_object(const std::string& path) {
  auto json = io::read_json_file(path);
  if (!json.is_object()) fail_input("{}: expected an object, got {}", path, io::describe(json));
  return json;
}

void set_vocab_size(Tokenizer::State& state) {
  state.vocab_size = state.piece_count;
  if (!state.added_by_id.empty()) {
    state.vocab_size = std::max(state.vocab_size, state.added_by_id.rbegin()->first + 1);
  }
}

std::shared_ptr<Tokenizer::State> load_model(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) fail_input("{}: tokenizer model not found", path);
  const ShimApi& api = shim();
  char err[kErrorCap] = "";
  void* handle = api.load(path.c_str(), err, sizeof err);
  if (handle == nullptr) {
    fail_input("{}: not a valid SentencePiece model ({})", path, one_line(err));
  }
  auto state = std::make_shared<Tokenizer::State>();
  state->api = &api;
  state->handle = handle;
  state->path = path;
  state->piece_count = api.piece_size(handle);
  state->bos = api.bos_id(handle);
  state->eos = api.eos_id(handle);
  state->unk = api.unk_id(handle);
  state->pad = api.pad_id(handle);
  return state;
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::string& model_path) {
  auto state = load_model(model_path);
  set_vocab_size(*state);
  state->add_bos = state->bos >= 0;
  return Tokenizer(std::move(state));
}

bool Tokenizer::model_dir_has_tokenizer(const std::string& dir) {
  std::error_code ec;
  const fs::path root(dir);
  return fs::exists(root / "tokenizer.json", ec) || fs::exists(root / "tokenizer.model", ec);
}

namespace {

// config.json's bos/eos/pad_token_id where the tokenizer files name no token (transformers'
// generation falls back to them too). A list of EOS ids gives its first.
void apply_model_config_ids(Tokenizer::State& state, const fs::path& root) {
  std::error_code ec;
  const fs::path path = root / "config.json";
  if (!fs::exists(path, ec)) return;
  const std::string where = path.string();
  const auto config = read_json_object(where);
  const std::pair<const char*, int64_t*> fields[] = {
      {"bos_token_id", &state.bos}, {"eos_token_id", &state.eos}, {"pad_token_id", &state.pad}};
  for (const auto& [key, id] : fields) {
    if (*id >= 0) continue;
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) continue;
    const nlohmann::json& value = it->is_array() && !it->empty() ? it->front() : *it;
    if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
        value.get<int64_t>() >= state.vocab_size) {
      fail_input("{}: {}: expected a token id in [0, {}), got {}", where, key, state.vocab_size,
                 io::describe(*it));
    }
    *id = value.get<int64_t>();
  }
}

// transformers' clean_up_tokenization: no space before punctuation and English contractions.
std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> rules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : rules) {
    const std::string needle(from), replacement(to);
    std::string out;
    size_t prev = 0;
    for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, prev)) {
      out.append(text, prev, pos - prev);
      out += replacement;
      prev = pos + needle.size();
    }
    out.append(text, prev, std::string::npos);
    text = std::move(out);
  }
  return text;
}

// The post-processor's ids around one sequence must be [BOS] and [EOS] (or nothing): the
// Tokenizer API adds BOS and EOS as two switches.
void check_post_processor(Tokenizer::State& state, const std::vector<int64_t>& ids, int64_t* token,
                          const char* name, const char* side) {
  if (ids.empty()) return;
  if (*token < 0 && ids.size() == 1) *token = ids[0];
  if (ids.size() != 1 || ids[0] != *token) {
    fail_input(
        "{}: post_processor adds ids [{}] {} the text, but only the {} token ({}) is supported "
        "there",
        state.path, fmt::join(ids, ", "), side, name, *token);
  }
}

// encode()'s defaults: tokenizer_config.json's add_bos_token / add_eos_token where it gives them,
// else the loader's own defaults. A flag asking for a token the tokenizer lacks is an input error.
void set_default_specials(Tokenizer::State& state, std::optional<bool> add_bos,
                          std::optional<bool> add_eos, bool default_bos, bool default_eos,
                          const fs::path& config_path) {
  if (add_bos.value_or(false) && state.bos < 0) {
    fail_input("{}: add_bos_token is true but the tokenizer has no BOS token",
               config_path.string());
  }
  if (add_eos.value_or(false) && state.eos < 0) {
    fail_input("{}: add_eos_token is true but the tokenizer has no EOS token",
               config_path.string());
  }
  state.add_bos = add_bos.value_or(default_bos);
  state.add_eos = add_eos.value_or(default_eos);
}

std::shared_ptr<Tokenizer::State> load_tokenizer_json(const fs::path& root) {
  std::error_code ec;
  auto state = std::make_shared<Tokenizer::State>();
  state->path = (root / "tokenizer.json").string();
  state->hf = hf::HfTokenizer::from_file(state->path);
  state->piece_count = state->hf->vocab_size();
  state->vocab_size = state->piece_count;
  state->unk = state->hf->unk_id().value_or(-1);

  std::optional<bool> add_bos, add_eos;
  const fs::path config_path = root / "tokenizer_config.json";
  if (fs::exists(config_path, ec)) {
    const std::string where = config_path.string();
    const auto config = read_json_object(where);
    add_bos = io::get_bool(config, "add_bos_token", where);
    add_eos = io::get_bool(config, "add_eos_token", where);
    state->clean_up_spaces =
        io::get_bool(config, "clean_up_tokenization_spaces", where).value_or(false);
    apply_special_tokens(*state, config, where);
  }
  const fs::path map_path = root / "special_tokens_map.json";
  if (fs::exists(map_path, ec)) {
    const std::string where = map_path.string();
    apply_special_tokens(*state, read_json_object(where), where);
  }
  apply_model_config_ids(*state, root);

  // What encode(text) adds by default: tokenizer_config.json's add_bos_token / add_eos_token
  // when given (LlamaTokenizerFast rewrites its post-processor from them), else the
  // post-processor's own ids.
  check_post_processor(*state, state->hf->special_prefix(), &state->bos, "BOS", "before");
  check_post_processor(*state, state->hf->special_suffix(), &state->eos, "EOS", "after");
  set_default_specials(*state, add_bos, add_eos, !state->hf->special_prefix().empty(),
                       !state->hf->special_suffix().empty(), config_path);
  return state;
}

}  // namespace

Tokenizer Tokenizer::from_model_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail_input("{}: model directory not found", dir);
  const fs::path root(dir);
  if (fs::exists(root / "tokenizer.json", ec)) return Tokenizer(load_tokenizer_json(root));
  const fs::path model = root / "tokenizer.model";
  if (!fs::exists(model, ec)) {
    fail_input(
        "{}: no tokenizer.json and no tokenizer.model, so this model has no tokenizer; give "
        "token ids instead of text (--prompt-ids, pre-tokenized data)",
        dir);
  }
  auto state = load_model(model.string());

  // Older HF format: {"<pad>": 32000, ...}
  const fs::path added = root / "added_tokens.json";
  if (fs::exists(added, ec)) {
    const std::string where = added.string();
    const auto json = read_json_object(where);
    for (const auto& [content, id] : json.items()) {
      if (!id.is_number_integer()) {
        fail_input("{}: {}: expected a token id, got {}", where, content, io::describe(id));
      }
      state->add_token(content, id.get<int64_t>(), where);
    }
  }

  std::optional<bool> add_bos, add_eos;
  const fs::path config_path = root / "tokenizer_config.json";
  if (fs::exists(config_path, ec)) {
    const std::string where = config_path.string();
    const auto config = read_json_object(where);
    add_bos = io::get_bool(config, "add_bos_token", where);
    add_eos = io::get_bool(config, "add_eos_token", where);
    apply_added_tokens_decoder(*state, config, where);
    apply_special_tokens(*state, config, where);
  }
  // As in HF from_pretrained, special_tokens_map.json overrides tokenizer_config.json.
  const fs::path map_path = root / "special_tokens_map.json";
  if (fs::exists(map_path, ec)) {
    const std::string where = map_path.string();
    const auto map = read_json_object(where);
    apply_special_tokens(*state, map, where);
  }

  set_vocab_size(*state);
  set_default_specials(*state, add_bos, add_eos, state->bos >= 0, false, config_path);
  return Tokenizer(std::move(state));
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
  const State& s = *state_;
  if (add_bos && s.bos < 0) fail_input("{}: BOS requested but the tokenizer has none", s.path);
  if (add_eos && s.eos < 0) fail_input("{}: EOS requested but the tokenizer has none", s.path);
  if (s.hf) {
    auto ids = s.hf->encode(text, false);
    if (add_bos) ids.insert(ids.begin(), s.bos);
    if (add_eos) ids.push_back(s.eos);
    return ids;
  }
  // At most one piece per byte plus the dummy prefix, unless normalization expands the text;
  // the shim reports the size it needs and we retry.
  std::vector<int32_t> buffer(text.size() + 4);
  char err[kErrorCap] = "";
  int64_t n = 0;
  for (;;) {
    n = s.api->encode(s.handle, text.data(), text.size(), buffer.data(), buffer.size(), err,
                      sizeof err);
    if (n < 0) fail_runtime("{}: encoding failed: {}", s.path, one_line(err));
    if (static_cast<size_t>(n) <= buffer.size()) break;
    buffer.resize(static_cast<size_t>(n));
  }
  std::vector<int64_t> ids;
  ids.reserve(static_cast<size_t>(n) + 2);
  if (add_bos) ids.push_back(s.bos);
  ids.insert(ids.end(), buffer.begin(), buffer.begin() + n);
  if (add_eos) ids.push_back(s.eos);
  return ids;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  return encode(text, state_->add_bos, state_->add_eos);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  const State& s = *state_;
  if (s.hf) {
    std::string text = s.hf->decode(ids, /*skip_special_tokens=*/true);
    return s.clean_up_spaces ? clean_up_tokenization(std::move(text)) : text;
  }
  std::string text;
  std::vector<int32_t> run;  // consecutive SentencePiece ids, decoded together
  auto flush = [&] {
    if (run.empty()) return;
    std::string out(run.size() * 8, '\0');
    char err[kErrorCap] = "";
    for (;;) {
      const int64_t n =
          s.api->decode(s.handle, run.data(), run.size(), out.data(), out.size(), err, sizeof err);
      if (n < 0) fail_runtime("{}: decoding failed: {}", s.path, one_line(err));
      const bool fits = static_cast<size_t>(n) <= out.size();
      out.resize(static_cast<size_t>(n));
      if (fits) break;
    }
    text += out;
    run.clear();
  };
  for (const int64_t id : ids) {
    if (id >= 0 && (id == s.bos || id == s.eos || id == s.pad)) continue;
    if (id >= 0 && id < s.piece_count) {
      run.push_back(static_cast<int32_t>(id));
      continue;
    }
    auto added = s.added_by_id.find(id);
    if (added == s.added_by_id.end()) {
      fail_input(
          "token id {} is outside the vocabulary of {} ({} ids); wrong tokenizer for "
          "this model?",
          id, s.path, s.vocab_size);
    }
    flush();
    text += added->second;
  }
  flush();
  return text;
}

std::string Tokenizer::piece(int64_t id) const {
  const State& s = *state_;
  if (s.hf) {
    if (auto token = s.hf->id_to_token(id)) return *token;
    fail_input("token id {} is outside the vocabulary of {} ({} ids)", id, s.path, s.vocab_size);
  }
  if (id >= 0 && id < s.piece_count) {
    std::string out(32, '\0');
    int64_t n = s.api->id_to_piece(s.handle, static_cast<int32_t>(id), out.data(), out.size());
    if (static_cast<size_t>(n) > out.size()) {
      out.resize(static_cast<size_t>(n));
      n = s.api->id_to_piece(s.handle, static_cast<int32_t>(id), out.data(), out.size());
    }
    out.resize(static_cast<size_t>(n));
    return out;
  }
  if (auto added = s.added_by_id.find(id); added != s.added_by_id.end()) return added->second;
  fail_input("token id {} is outside the vocabulary of {} ({} ids)", id, s.path, s.vocab_size);
}

std::optional<int64_t> Tokenizer::piece_to_id(const std::string& piece) const {
  return state_->find(piece);
}

bool Tokenizer::is_byte(int64_t id) const {
  const State& s = *state_;
  if (s.hf) return s.hf->is_byte(id);
  return id >= 0 && id < s.piece_count && s.api->is_byte(s.handle, static_cast<int32_t>(id)) != 0;
}

int64_t Tokenizer::vocab_size() const { return state_->vocab_size; }
int64_t Tokenizer::bos_id() const { return state_->bos; }
int64_t Tokenizer::eos_id() const { return state_->eos; }
int64_t Tokenizer::unk_id() const { return state_->unk; }
int64_t Tokenizer::pad_id() const { return state_->pad; }
bool Tokenizer::add_bos_default() const { return state_->add_bos; }
bool Tokenizer::add_eos_default() const { return state_->add_eos; }
const std::string& Tokenizer::model_path() const { return state_->path; }
bool Tokenizer::is_tokenizer_json() const { return state_->hf != nullptr; }
const hf::HfTokenizer* Tokenizer::tokenizer_json() const { return state_->hf.get(); }

}  // namespace mixlora::data
