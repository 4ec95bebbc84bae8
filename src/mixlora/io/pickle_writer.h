// A writer for the few Python pickle (protocol 2) opcodes that a torch.save state dict uses.
//
// It emits opcodes only; what they build is the caller's business (torch_bin.cpp). Every
// opcode here is one that torch.load(..., weights_only=True) accepts in PyTorch 1.13 and 2.x;
// no memo (PUT/GET) is written, which those unpicklers do not require.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mixlora::io {

class PickleWriter {
 public:
  PickleWriter();  // starts with PROTO 2

  void global(std::string_view module, std::string_view name);  // GLOBAL "module\nname\n"
  void mark();                                                  // MARK
  void tuple_from_mark();                                       // TUPLE: items since MARK
  void empty_tuple();                                           // EMPTY_TUPLE
  void reduce();                                                // REDUCE: callable(*args)
  void persistent_id();                                         // BINPERSID: load(top)
  void set_items();                                             // SETITEMS: pairs since MARK
  void integer(int64_t value);                                  // smallest BININT* or LONG1
  void string(std::string_view utf8);                           // BINUNICODE
  void boolean(bool value);                                     // NEWTRUE / NEWFALSE

  // Appends STOP and returns the whole pickle; the writer is spent afterwards.
  std::string finish();

 private:
  void op(char opcode) { bytes_.push_back(opcode); }
  void le(uint64_t value, int size);

  std::string bytes_;
};

}  // namespace mixlora::io
