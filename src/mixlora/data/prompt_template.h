// Prompt templates for instruction data {instruction, input?, output?} (SPEC section 6), as
// MoE-PEFT's Prompter renders them: prompt_input when `input` is non-empty, else prompt_no_input,
// with Python str.format placeholders {instruction} and {input} ({{ and }} are literal braces);
// a non-empty output is appended followed by "\n".
#pragma once

#include <optional>
#include <string>

namespace mixlora::data {

struct PromptTemplate {
  std::string name;             // "moe_peft", "alpaca", or the file path
  std::string prompt_input;     // with {instruction} and {input}
  std::string prompt_no_input;  // with {instruction}
  std::string response_split;   // informational (generation splits the answer off here)

  // The prompt without the answer.
  std::string render_prompt(const std::string& instruction,
                            const std::optional<std::string>& input) const;
  // Prompt + output + "\n" (just the prompt when output is empty or absent), as MoE-PEFT trains on.
  std::string render(const std::string& instruction, const std::optional<std::string>& input,
                     const std::optional<std::string>& output) const;
};

// The `prompt` key of an adapter: "" or "moe_peft" (MoE-PEFT's default template, the text of
// its prompts/mlora.json), "alpaca" (prompts/alpaca.json), or a path to a JSON file with
// prompt_input and prompt_no_input (response_split optional; description and other keys
// ignored). As in MoE-PEFT an existing file wins over a built-in name. A template is checked
// when loaded: unknown placeholders or unbalanced braces are InputErrors naming the file and key.
PromptTemplate load_prompt_template(const std::string& name_or_path);

// The built-in templates, by name; nullopt for another name.
std::optional<PromptTemplate> builtin_prompt_template(const std::string& name);

}  // namespace mixlora::data
