// Catch2 for every test file: include this, never <catch2/catch.hpp> directly.
//
// LibTorch's c10/util/Logging.h (through glog in Debian's build, through its own logging in the
// pip build) defines a CHECK macro too. A file that included a LibTorch header after Catch got
// that one: a failing CHECK aborted the whole test binary instead of failing one assertion.
// Here LibTorch's logging header comes first (its include guard keeps it from coming back) and
// Catch's CHECK replaces it.
#pragma once

#include <c10/util/Logging.h>
#undef CHECK

#include <catch2/catch.hpp>
