#include "kube_api_lb/core/health.h"

namespace kal {

const char *to_string(Health h) {
  switch (h) {
  case Health::Unknown:
    return "unknown";
  case Health::Up:
    return "up";
  case Health::Down:
    return "down";
  }
  return "?";
}

const char *to_string(CheckResult r) {
  switch (r) {
  case CheckResult::Ok:
    return "OK";
  case CheckResult::L4Con:
    return "L4CON";
  case CheckResult::L4Tout:
    return "L4TOUT";
  case CheckResult::L6Rsp:
    return "L6RSP";
  case CheckResult::L6Tout:
    return "L6TOUT";
  case CheckResult::L7Rsp:
    return "L7RSP";
  case CheckResult::L7Tout:
    return "L7TOUT";
  case CheckResult::L7Sts:
    return "L7STS";
  case CheckResult::L7Auth:
    return "L7AUTH";
  }
  return "?";
}

} // namespace kal
