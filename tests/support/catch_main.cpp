// The one main() of every Catch2 test executable. Catch2 returns the number of failed
// assertions (capped), so a failing test binary exits non-zero.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
