/// \file error_checks.h
/// \brief The effml::Error that a call throws: its message, and the check that it names a value.
#pragma once

#include <catch2/catch.hpp>

#include <exception>
#include <functional>
#include <string>

#include "effml/error.h"

namespace effml::testing {

/// The what() of the effml::Error (or subclass, NotImplemented included) that `call` throws;
/// "(no error)" when it returns normally. Any other exception propagates to the caller, so that
/// Catch2 reports it as unexpected. Typical use:
/// `CHECK_THAT(error_of([&] { f(bad); }), Contains("expected (N, 3)"));`.
inline std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

/// Checks that `call` throws an effml::Error whose what() contains `needle`, letter case
/// ignored ("NaN" and "nan" both name a NaN; "" accepts any message). Fails the check, and
/// lets the test case go on, when `call` throws NotImplemented (an effml::Error too: an
/// unwritten function must not pass), throws any other exception (std::bad_cast from a careless
/// dynamic_cast is not a message for a student) or returns normally.
inline void check_error_names(const std::function<void()>& call, const std::string& needle) {
  try {
    call();
  } catch (const NotImplemented& e) {
    FAIL_CHECK(e.what());
    return;
  } catch (const Error& e) {
    INFO("the message should contain \"" << needle << "\"");
    CHECK_THAT(e.what(), Catch::Matchers::Contains(needle, Catch::CaseSensitive::No));
    return;
  } catch (const std::exception& e) {
    FAIL_CHECK("expected an effml::Error naming \"" << needle << "\", got another exception: "
                                                    << e.what());
    return;
  }
  FAIL_CHECK("expected an effml::Error naming \"" << needle << "\", nothing was thrown");
}

}  // namespace effml::testing
