// railcc/error.hpp: the exception thrown for bad input.
//
// Every importer and validator reports a problem with an `InputError` whose message
// names the input (file, line, element or field) and what is wrong with it, so an
// operator can fix the file without reading railcc's source.
#pragma once

#include <stdexcept>
#include <string>

#include "railcc/config.hpp"

RAILCC_NAMESPACE_BEGIN

/// Bad input: a malformed or inconsistent file, an impossible parameter.
/// `what()` is a complete sentence naming the input at fault.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
};

RAILCC_NAMESPACE_END
