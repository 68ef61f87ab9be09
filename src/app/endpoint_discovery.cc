#include "app/endpoint_discovery.h"

#include "discovery/state_file.h"
#include "kube_api_lb/log/logger.h"

#include <algorithm>
#include <ctime>

namespace kal {
namespace {

DiscoveryMergeSettings merge_settings(const DiscoveryConfig &d) {
  DiscoveryMergeSettings s;
  s.debounce = d.debounce;
  s.grace = d.grace;
  return s;
}

bool same_set(std::vector<HostPort> a, std::vector<HostPort> b) {
  auto key = [](const HostPort &x, const HostPort &y) { return x.str() < y.str(); };
  std::sort(a.begin(), a.end(), key);
  std::sort(b.begin(), b.end(), key);
  return a == b;
}

std::string joined(const std::vector<HostPort> &v) {
  std::string s;
  for (const auto &h : v) {
    s += s.empty() ? "" : ",";
    s += h.str();
  }
  return s;
}

std::string rfc3339_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The saved endpoints to start from: those of a state file learned with this very seed. A file
// learned with another seed belongs to another configuration (or another cluster): ignored.
std::vector<HostPort> read_saved(const DiscoveryConfig &d, const std::vector<HostPort> &seed,
                                 std::string &what) {
  if (d.state_file.empty()) {
    what = "none";
    return {};
  }
  bool missing = false;
  auto st = load_discovery_state(d.state_file, &missing);
  if (!st) {
    if (missing) {
      what = "none";
      log::info("discovery: no state file yet; starting from the seed")
          .kv("state_file", d.state_file);
    } else {
      what = "error: " + st.error();
      log::warn("discovery: the state file cannot be used; starting from the seed")
          .kv("error", st.error());
    }
    return {};
  }
  if (!same_set(st->seed, seed)) {
    what = "ignored: learned with another seed";
    log::warn("discovery: the state file was learned with another seed; ignored")
        .kv("state_file", d.state_file)
        .kv("its_seed", joined(st->seed))
        .kv("seed", joined(seed));
    return {};
  }
  what = "loaded";
  log::info("discovery: serving from the seed and the saved state until discovery answers")
      .kv("state_file", d.state_file)
      .kv("saved", joined(st->endpoints))
      .kv("saved_at", st->saved_at);
  return st->endpoints;
}

} // namespace

EndpointDiscovery::EndpointDiscovery(uv_loop_t *loop, TimeSource &time, const Config &c,
                                     Hooks hooks)
    : loop_(loop), time_(time), cfg_(c.discovery), seed_(c.endpoints), hooks_(std::move(hooks)),
      merge_(c.endpoints, read_saved(c.discovery, c.endpoints, saved_state_),
             merge_settings(c.discovery)) {
  timer_ = time_.create_timer([this] { decide(); });
}

EndpointDiscovery::~EndpointDiscovery() { stop(); }

void EndpointDiscovery::start() {
  stopped_ = false;
  if (!timer_) {
    timer_ = time_.create_timer([this] { decide(); });
  }
  DiscoveryClient::Settings s;
  s.kubeconfig = cfg_.kubeconfig;
  DiscoveryClient::Callbacks cb;
  cb.pick = [this](const Upstream *avoid) { return pick(avoid); };
  cb.on_endpoints = [this](const std::vector<DiscoveredEndpoint> &eps) { on_endpoints(eps); };
  client_ = std::make_unique<DiscoveryClient>(loop_, time_, s, cb);
  log::info("discovery: watching the default/kubernetes EndpointSlices")
      .kv("kubeconfig", cfg_.kubeconfig)
      .kv("state_file", cfg_.state_file)
      .kv("seed", joined(seed_))
      .kv("saved_state", saved_state_);
  client_->start();
  arm();
}

void EndpointDiscovery::stop() {
  stopped_ = true;
  // Handles closed now, before the loop is: never from inside the client's own callbacks (stop()
  // runs on shutdown and on a reload that turns discovery off).
  client_.reset();
  timer_.reset();
}

void EndpointDiscovery::reconfigure(const Config &c) {
  const bool restart = c.discovery.kubeconfig != cfg_.kubeconfig;
  cfg_ = c.discovery;
  merge_.set_settings(merge_settings(cfg_));
  if (c.endpoints != seed_) {
    seed_ = c.endpoints;
    merge_.set_seed(seed_, time_.now());
  }
  if (restart && !stopped_) {
    client_.reset();
    start();
  }
  decide();
}

std::shared_ptr<Upstream> EndpointDiscovery::pick(const Upstream *avoid) {
  auto list = hooks_.active();
  if (!list || list->empty()) {
    return nullptr;
  }
  // Rotate, so a new list after a failure goes to the next healthy apiserver.
  for (size_t k = 0; k < list->size(); ++k) {
    const auto &u = (*list)[(next_pick_ + k) % list->size()];
    if (u.get() != avoid && u->health() == Health::Up && !u->withdrawn() && !u->removed()) {
      next_pick_ = (next_pick_ + k + 1) % list->size();
      return u;
    }
  }
  return nullptr;
}

void EndpointDiscovery::annotate(const List &active) const {
  const auto withdrawn = merge_.withdrawn();
  for (const auto &u : active) {
    u->set_sources(merge_.sources(u->address()));
    const bool w = std::find(withdrawn.begin(), withdrawn.end(), u->address()) != withdrawn.end();
    u->set_withdrawn(w);
    if (hooks_.withdrawn) {
      hooks_.withdrawn(*u, w);
    }
  }
}

void EndpointDiscovery::on_endpoints(const std::vector<DiscoveredEndpoint> &eps) {
  const auto before = merge_.withdrawn();
  const auto r = merge_.observe(eps, time_.now());
  switch (r) {
  case DiscoveryMerge::Observed::Empty:
    ++ignored_;
    log::warn("discovery: no ready apiserver in the kubernetes EndpointSlices; ignored, the "
              "endpoint list stays")
        .kv("listed", static_cast<uint64_t>(eps.size()));
    return;
  case DiscoveryMerge::Observed::TooMany:
    ++ignored_;
    log::warn("discovery: more endpoints than kube-api-lb takes; ignored, the endpoint list stays")
        .kv("listed", static_cast<uint64_t>(eps.size()))
        .kv("max", static_cast<uint64_t>(kMaxEndpoints));
    return;
  case DiscoveryMerge::Observed::Pending:
    log::info("discovery: the apiservers changed; applied once the change holds")
        .kv("debounce_ms", static_cast<int64_t>(cfg_.debounce.count()));
    break;
  case DiscoveryMerge::Observed::Unchanged:
    break;
  }
  const auto after = merge_.withdrawn();
  if (after != before) {
    auto active = hooks_.active();
    if (active) {
      annotate(*active);
      for (const auto &u : *active) {
        const bool now_w = u->withdrawn();
        const bool was_w = std::find(before.begin(), before.end(), u->address()) != before.end();
        if (now_w && !was_w) {
          log::info("discovery: endpoint left the kubernetes EndpointSlice (or is not ready in "
                    "it); no new connections while another is ready, nothing closed")
              .kv("endpoint", u->name());
          if (client_) {
            client_->endpoint_unhealthy(*u);
          }
        } else if (!now_w && was_w) {
          log::info("discovery: endpoint ready in the kubernetes EndpointSlice again")
              .kv("endpoint", u->name());
        }
      }
    }
  }
  decide();
}

void EndpointDiscovery::on_health_change(Upstream &u, Health new_h) {
  if (stopped_) {
    return;
  }
  if (new_h == Health::Down && client_) {
    client_->endpoint_unhealthy(u);
  }
  decide();
}

void EndpointDiscovery::decide() {
  if (stopped_) {
    return;
  }
  std::vector<HostPort> usable;
  if (auto active = hooks_.active()) {
    for (const auto &u : *active) {
      if (u->health() == Health::Up) {
        usable.push_back(u->address());
      }
    }
  }
  auto d = merge_.decide(time_.now(), usable);
  if (d) {
    if (!d->added.empty() || !d->removed.empty()) {
      ++applied_;
      log::info("discovery: endpoint list changed")
          .kv("added", joined(d->added))
          .kv("removed", joined(d->removed))
          .kv("endpoints", joined(d->endpoints));
      hooks_.apply(d->endpoints);
    }
    if (d->save) {
      save();
    }
  }
  if (auto active = hooks_.active()) {
    annotate(*active);
  }
  arm();
}

void EndpointDiscovery::save() {
  if (cfg_.state_file.empty() || merge_.discovered().empty()) {
    return;
  }
  DiscoveryState st{seed_, merge_.discovered(), rfc3339_now()};
  auto r = save_discovery_state(cfg_.state_file, st);
  if (!r) {
    ++write_failures_;
    log::warn("discovery: cannot write the state file; serving on without it")
        .kv("error", r.error());
    return;
  }
  ++writes_;
  if (log::v(1)) {
    log::info("discovery: state file written")
        .kv("state_file", cfg_.state_file)
        .kv("endpoints", joined(st.endpoints));
  }
}

void EndpointDiscovery::arm() {
  if (stopped_) {
    return;
  }
  const auto now = time_.now();
  if (!timer_) {
    return;
  }
  if (auto next = merge_.next_wakeup(now)) {
    timer_->enable(std::chrono::ceil<std::chrono::milliseconds>(*next - now));
  } else {
    timer_->disable();
  }
}

DiscoveryStatus EndpointDiscovery::status() const {
  DiscoveryStatus s;
  s.enabled = true;
  if (client_) {
    const auto &c = client_->stats();
    s.state = c.state;
    s.endpoint = c.endpoint;
    s.last_error = c.last_error;
    s.last_sync_unix = c.last_sync_unix;
    s.lists = c.lists;
    s.list_failures = c.list_failures;
    s.watch_restarts = c.watch_restarts;
    s.events = c.events;
    s.auth_failures = c.auth_failures;
    s.connections = c.connections;
    s.connected = c.connected;
    s.received_bytes = c.received_bytes;
    s.oversize_events = c.oversize_events;
    s.malformed_events = c.malformed_events;
  } else {
    s.state = "starting";
  }
  s.applied_updates = applied_;
  s.ignored_updates = ignored_;
  s.state_writes = writes_;
  s.state_write_failures = write_failures_;
  s.state_file = cfg_.state_file;
  s.saved_state = saved_state_;
  return s;
}

} // namespace kal
