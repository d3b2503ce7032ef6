// Small text helpers shared by the report writers (drill reports, runbooks).
// Thread-safe (pure functions).
#pragma once

#include <string>

namespace cairn::core {

// HTML text escaping of &, <, >, " and ' (safe in element text and in
// quoted attribute values).
std::string html_escape(const std::string& s);

}  // namespace cairn::core
