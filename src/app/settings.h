#pragma once
// Maps the configuration model onto the plain settings structs the shell rooms take, so that
// proxy/ and health/ never read Config for what they can be handed.
#include "kube_api_lb/config/config.h"
#include "proxy/proxy_settings.h"

namespace kal {

// The data-path settings of `c` (timeouts in milliseconds, the policy, watermarks).
ProxySettings proxy_settings_from(const Config &c);

} // namespace kal
