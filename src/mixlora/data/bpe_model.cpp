#include "mixlora/data/bpe_model.h"

#include "mixlora/data/hf_json.h"
#include "mixlora/data/hf_text.h"

#include <fmt/format.h>

#include <queue>

namespace mixlora::data::hf {

namespace {

// Words longer than this are merged every time (a whole unsplit line would fill the cache).
constexpr size_t kCacheWordBytes = 256;
constexpr size_t kCacheEntries = 1 << 16;

}  // namespace

BpeModel::BpeModel(const nlohmann::json& model, const std::string& where) {
  const std::string type = component_type(model, where);
  if (type != "BPE") {
    fail_input("{}: model \"{}\" is not supported (supported: BPE)", where, type);
  }
  if (auto it = model.find("dropout"); it != model.end() && !it->is_null()) {
    fail_input("{}.dropout: BPE dropout is not supported (expected null, got {})", where,
               io::describe(*it));
  }
  unk_token_ = io::get_string(model, "unk_token", where);
  prefix_ = io::get_string(model, "continuing_subword_prefix", where).value_or("");
  suffix_ = io::get_string(model, "end_of_word_suffix", where).value_or("");
  byte_fallback_ = io::get_bool(model, "byte_fallback", where).value_or(false);
  fuse_unk_ = io::get_bool(model, "fuse_unk", where).value_or(false);
  ignore_merges_ = io::get_bool(model, "ignore_merges", where).value_or(false);

  const auto& vocab = require(model, "vocab", where);
  if (!vocab.is_object())
    fail_input("{}.vocab: expected an object, got {}", where, io::describe(vocab));
  vocab_.reserve(vocab.size());
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      fail_input("{}.vocab[\"{}\"]: expected a token id >= 0, got {}", where,
                 io::escape_unprintable(token), io::describe(id));
    }
    vocab_[token] = static_cast<int32_t>(id.get<int64_t>());
    max_id = std::max(max_id, id.get<int64_t>());
  }
  if (max_id >= static_cast<int64_t>(vocab_.size()) * 2 + 1024) {
    fail_input("{}.vocab: ids up to {} for {} tokens; ids must be (nearly) dense", where, max_id,
               vocab_.size());
  }
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  has_id_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [token, id] : vocab_) {
    id_to_token_[static_cast<size_t>(id)] = token;
    has_id_[static_cast<size_t>(id)] = true;
  }
  if (unk_token_) {
    if (auto it = vocab_.find(*unk_token_); it != vocab_.end()) unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  const auto& merges = require(model, "merges", where);
  if (!merges.is_array())
    fail_input("{}.merges: expected an array, got {}", where, io::describe(merges));
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& entry = merges[rank];
    std::string a, b;
    if (entry.is_string()) {  // "a b"
      const auto& text = entry.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        fail_input("{}.merges[{}]: expected \"A B\", got {}", where, rank, io::describe(entry));
      }
      a = text.substr(0, space);
      b = text.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
               entry[1].is_string()) {
      a = entry[0].get<std::string>();
      b = entry[1].get<std::string>();
    } else {
      fail_input("{}.merges[{}]: expected \"A B\" or [\"A\", \"B\"], got {}", where, rank,
                 io::describe(entry));
    }
    auto find = [&](const std::string& token) {
      auto it = vocab_.find(token);
      if (it == vocab_.end()) {
        fail_input("{}.merges[{}]: token \"{}\" is not in the vocabulary", where, rank,
                   io::escape_unprintable(token));
      }
      return it->second;
    };
    const int32_t a_id = find(a), b_id = find(b);
    std::string merged = a;
    merged.append(b, b.compare(0, prefix_.size(), prefix_) == 0 ? prefix_.size() : 0,
                  std::string::npos);
    // A later duplicate replaces an earlier one, as in tokenizers' HashMap.
    merges_[pair_key(a_id, b_id)] = Merge{static_cast<int32_t>(rank), find(merged)};
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int64_t id) const {
  if (id < 0 || id >= id_limit() || !has_id_[static_cast<size_t>(id)]) return nullptr;
  return &id_to_token_[static_cast<size_t>(id)];
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.size() > kCacheWordBytes) {
    tokenize_uncached(word, ids);
    return;
  }
  const std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t mark = ids.size();
  tokenize_uncached(word, ids);
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kCacheEntries) cache_.clear();
  cache_.emplace(key,
                 std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(mark), ids.end()));
}

void BpeModel::tokenize_uncached(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(std::string(word)); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  // One symbol per character (tokenizers' BPE::merge_word), with byte fallback and unk.
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  std::optional<int32_t> pending_unk;  // fused run of unknown characters
  std::string piece;
  for (size_t pos = 0; pos < word.size();) {
    const size_t length =
        std::min(utf8_length(static_cast<unsigned char>(word[pos])), word.size() - pos);
    piece.clear();
    if (pos > 0) piece += prefix_;
    piece.append(word.data() + pos, length);
    pos += length;
    if (pos == word.size()) piece += suffix_;
    if (auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk) {
        symbols.push_back(*pending_unk);
        pending_unk.reset();
      }
      symbols.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (const char c : piece) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // As in tokenizers, a pending unk is not flushed here: it lands after these bytes.
        for (const char c : piece) symbols.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_token_) {
      if (!unk_id_) {
        fail_input("BPE model: unk_token \"{}\" is not in the vocabulary", *unk_token_);
      }
      if (pending_unk && !fuse_unk_) symbols.push_back(*pending_unk);
      pending_unk = *unk_id_;
    }
    // Without an unk token an unknown character is dropped, as in tokenizers.
  }
  if (pending_unk) symbols.push_back(*pending_unk);
  merge(symbols);
  ids.insert(ids.end(), symbols.begin(), symbols.end());
}

// Merges by rank: the lowest-ranked adjacent pair first, leftmost among equal ranks; a
// doubly linked list over the symbols and a heap of candidate pairs (stale entries skipped).
void BpeModel::merge(std::vector<int32_t>& symbols) const {
  const int n = static_cast<int>(symbols.size());
  if (n < 2) return;
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  std::vector<int> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  std::vector<bool> alive(static_cast<size_t>(n), true);
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
    if (i + 1 < n) {
      auto it = merges_.find(pair_key(symbols[i], symbols[i + 1]));
      if (it != merges_.end()) queue.push({it->second.rank, i, it->second.new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    if (!alive[top.pos] || next[top.pos] < 0) continue;
    const int right = next[top.pos];
    auto it = merges_.find(pair_key(symbols[top.pos], symbols[right]));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale
    symbols[top.pos] = top.new_id;
    alive[right] = false;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    if (prev[top.pos] >= 0) {
      auto left = merges_.find(pair_key(symbols[prev[top.pos]], symbols[top.pos]));
      if (left != merges_.end())
        queue.push({left->second.rank, prev[top.pos], left->second.new_id});
    }
    if (next[top.pos] >= 0) {
      auto after = merges_.find(pair_key(symbols[top.pos], symbols[next[top.pos]]));
      if (after != merges_.end()) queue.push({after->second.rank, top.pos, after->second.new_id});
    }
  }
  std::vector<int32_t> merged;
  merged.reserve(static_cast<size_t>(n));
  for (int i = 0; i >= 0; i = next[i]) merged.push_back(symbols[i]);
  symbols = std::move(merged);
}

}  // namespace mixlora::data::hf
