// CHECK_CONTAINS(text, part): a doctest check that prints both strings when it fails.
#pragma once

#include <doctest/doctest.h>

#include <string>

#define CHECK_CONTAINS(text, part)                                                           \
  do {                                                                                       \
    const std::string railcc_text_ = (text);                                                 \
    const std::string railcc_part_ = (part);                                                 \
    CHECK_MESSAGE(railcc_text_.find(railcc_part_) != std::string::npos,                      \
                  "\"" << railcc_text_ << "\" does not contain \"" << railcc_part_ << "\""); \
  } while (false)
