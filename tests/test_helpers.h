// Small helpers shared by the Catch2 tests.
#pragma once

#include <catch2/catch.hpp>

// The expression throws mixlora::InputError (exit code 2 in the apps) with a message that
// satisfies the string matcher.
#define REQUIRE_INPUT_ERROR(expr, matcher)                 \
  do {                                                     \
    REQUIRE_THROWS_AS(expr, ::mixlora::InputError);        \
    REQUIRE_THROWS_WITH(expr, matcher);                    \
  } while (false)
