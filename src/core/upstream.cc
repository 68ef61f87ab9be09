#include "kube_api_lb/core/upstream.h"

namespace kal {

const char *to_string(Liveness l) {
  switch (l) {
  case Liveness::Http2:
    return "http2-ping";
  case Liveness::Http1:
    return "http1";
  case Liveness::Unknown:
    break;
  }
  return "unknown";
}

} // namespace kal
