#include "mixlora/data/prompt_template.h"

#include "mixlora/common/error.h"
#include "mixlora/io/json_file.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>

namespace mixlora::data {

namespace {

using Values = std::map<std::string, std::string>;

// Python str.format with keyword arguments only: "{name}" -> values[name], "{{" -> "{",
// "}}" -> "}". `where` prefixes errors ("alpaca.json: prompt_input").
std::string format_template(const std::string& text, const Values& values,
                            const std::string& where) {
  std::string out;
  out.reserve(text.size() + 256);
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '{') {
      if (i + 1 < text.size() && text[i + 1] == '{') {
        out += '{';
        ++i;
        continue;
      }
      const size_t close = text.find('}', i);
      if (close == std::string::npos)
        fail_input("{}: '{{' without a closing '}}' (write {{{{ for a literal brace)", where);
      const std::string name = text.substr(i + 1, close - i - 1);
      auto it = values.find(name);
      if (it == values.end()) {
        std::string known;
        for (const auto& [key, value] : values) known += (known.empty() ? "{" : ", {") + key + "}";
        fail_input(
            "{}: unknown placeholder {{{}}} (known here: {}; write {{{{ and }}}} for literal "
            "braces)",
            where, name, known);
      }
      out += it->second;
      i = close;
    } else if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      fail_input("{}: single '}}' (write }}}} for a literal brace)", where);
    } else {
      out += c;
    }
  }
  return out;
}

void validate(const PromptTemplate& t, const std::string& source) {
  format_template(t.prompt_input, {{"instruction", ""}, {"input", ""}}, source + ": prompt_input");
  format_template(t.prompt_no_input, {{"instruction", ""}}, source + ": prompt_no_input");
}

PromptTemplate read_template_file(const std::string& path) {
  const auto json = io::read_json_file(path);
  if (!json.is_object()) {
    fail_input(
        "{}: a prompt template must be a JSON object with prompt_input and prompt_no_input, got {}",
        path, io::describe(json));
  }
  PromptTemplate t;
  t.name = path;
  auto required = [&](const char* key) {
    auto value = io::get_string(json, key, path);
    if (!value)
      fail_input("{}: {}: missing field (a prompt template needs prompt_input and prompt_no_input)",
                 path, key);
    return *value;
  };
  t.prompt_input = required("prompt_input");
  t.prompt_no_input = required("prompt_no_input");
  t.response_split = io::get_string(json, "response_split", path).value_or("");
  validate(t, path);
  return t;
}

}  // namespace

std::optional<PromptTemplate> builtin_prompt_template(const std::string& name) {
  if (name == "moe_peft") {
    // MoE-PEFT's default template (moe_peft/prompter.py; prompts/mlora.json has the same text).
    return PromptTemplate{"moe_peft",
                          "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Output:\n",
                          "### Instruction:\n{instruction}\n\n### Output:\n", "### Output:"};
  }
  if (name == "alpaca") {
    // Alpaca-LoRA's template (prompts/alpaca.json).
    return PromptTemplate{
        "alpaca",
        "Below is an instruction that describes a task, paired with an input that provides further "
        "context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n",
        "### Response:"};
  }
  return std::nullopt;
}

PromptTemplate load_prompt_template(const std::string& name_or_path) {
  if (name_or_path.empty()) return *builtin_prompt_template("moe_peft");
  std::error_code ec;
  if (std::filesystem::is_regular_file(name_or_path, ec)) return read_template_file(name_or_path);
  if (auto builtin = builtin_prompt_template(name_or_path)) return *builtin;
  fail_input("prompt \"{}\": neither a template file nor a built-in template (moe_peft, alpaca)",
             name_or_path);
}

std::string PromptTemplate::render_prompt(const std::string& instruction,
                                          const std::optional<std::string>& input) const {
  // MoE-PEFT: `if input:` -- an empty input counts as none.
  if (input && !input->empty()) {
    return format_template(prompt_input, {{"instruction", instruction}, {"input", *input}}, name);
  }
  return format_template(prompt_no_input, {{"instruction", instruction}}, name);
}

std::string PromptTemplate::render(const std::string& instruction,
                                   const std::optional<std::string>& input,
                                   const std::optional<std::string>& output) const {
  std::string text = render_prompt(instruction, input);
  if (output && !output->empty()) text += *output + "\n";
  return text;
}

}  // namespace mixlora::data
