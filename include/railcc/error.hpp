// railcc/error.hpp: the exceptions railcc throws.
//
// Every importer and validator reports a problem with an `InputError` whose message
// names the input (file, line, element or field) and what is wrong with it, so an
// operator can fix the file without reading railcc's source. A `LogicError` is railcc
// (or code built on it) breaking its own rules, such as an algorithm that waits for an
// operation it never posted: the tools report it as a bug, never as bad input. A
// `PeerError` is another process of the job failing or not arriving in time.
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

/// Another process of the job failed, left, or did not arrive in time: a rank that never
/// joined, a peer that died mid-collective, ranks that called different collectives.
/// `what()` names the ranks and the call, so a hang becomes an error an operator can act
/// on.
class PeerError : public std::runtime_error {
 public:
  explicit PeerError(const std::string& message) : std::runtime_error(message) {}
};

/// A broken internal rule: an algorithm or a schedule pass produced a plan that cannot be
/// right whatever the input (a dependency on an operation not posted yet, a step repeat
/// on a backend that does not repeat steps, a dependency a rank cannot observe).
class LogicError : public std::logic_error {
 public:
  explicit LogicError(const std::string& message) : std::logic_error(message) {}
};

RAILCC_NAMESPACE_END
