// HealthChecker, part 2 of 2: what the verdicts make of each observation (check results, PING acks
// and timeouts, GOAWAY, idle closes, live traffic), published to the Upstream, and the close gate.
#include "health/checker.h"
#include "health/checker_target.h"

#include "kube_api_lb/log/logger.h"

#include <algorithm>

namespace kal {

using std::chrono::milliseconds;

void HealthChecker::sample_traffic(Target &t, TimePoint now) {
  const uint64_t b = t.up->counters.bytes_to_client.load(std::memory_order_relaxed);
  if (b != t.bytes_seen) {
    t.bytes_seen = b;
    t.verdict.on_traffic(now);
  }
}

void HealthChecker::note_stall(Target &t, TimePoint now) {
  t.up->health_counters.stalls.fetch_add(1, std::memory_order_relaxed);
  log::info("health check connection stopped taking bytes")
      .kv("endpoint", t.up->name())
      .kv("send_queue_bytes", t.stall.outstanding())
      .kv("stuck_ms", static_cast<int64_t>(t.stall.stuck_for(now).count()))
      .kv("timeout_ms", static_cast<int64_t>(t.rtt.timeout().count()));
}

bool HealthChecker::sample_send_queue(Target &t, TimePoint now) {
  const SendSample s = t.probe->send_queue();
  t.stall.sample(now, s);
  t.up->health_counters.send_queue_bytes.store(s.outstanding, std::memory_order_relaxed);
  return t.stall.stalled(now, t.rtt.timeout());
}

void HealthChecker::expire_pings(Target &t, TimePoint now) {
  // Our bytes stopped leaving (nothing acknowledged for the timeout): a PING that timed out now
  // could not even reach the apiserver, so it counts as the stall it is. The stall only names the
  // PING's timeout; it is never a piece of evidence of its own (one per PING, as before), so a
  // stall with a PING and a /readyz outstanding does not count twice.
  const bool stalled = sample_send_queue(t, now);
  const bool new_stall = t.stall.take_new(now, t.rtt.timeout());
  const size_t n = t.probe->expire_pings(now - t.rtt.timeout());
  const Observation ob = stalled ? Observation::Stalled : Observation::PingTimedOut;
  if (new_stall) {
    note_stall(t, now);
  }
  for (size_t i = 0; i < n && !t.retired && !stopped_; i++) {
    t.up->check_history.add(CheckSample{mono_ms(now), 0, CheckResult::L7Tout, true});
    apply(t, ob, CheckResult::L7Tout, now, nullptr);
  }
  if (n == 0 || t.retired || stopped_) {
    return;
  }
  // One PING lost proves little; confirm at once rather than a PING interval later, or a hang
  // takes interval + 2 x timeout to see: a /readyz (the ready verdict, on this connection) and a
  // second PING with the same timeout (the dead verdict).
  t.budget.recheck_now(now);
  if (!t.verdict.dead() && t.probe->ping(now)) {
    t.up->health_counters.pings.fetch_add(1, std::memory_order_relaxed);
    t.budget.on_ping_sent(now);
  }
}

void HealthChecker::note_way(Target &t, const ProbeOutcome &o, TimePoint now) {
  Liveness way = Liveness::Unknown;
  if (cfg_.mode != HealthMode::Https) {
    way = Liveness::Http1; // every check is one connection: today's cadence
  } else if (t.probe->connected()) {
    way = t.probe->h2() ? Liveness::Http2 : Liveness::Http1;
  }
  if (way != t.budget.way()) {
    t.budget.set_way(way, now);
  }
  if (way != Liveness::Unknown) {
    t.up->health_counters.liveness.store(static_cast<uint8_t>(way), std::memory_order_relaxed);
  }
  if (way == Liveness::Http1 && o.established && cfg_.mode == HealthMode::Https && cfg_.http2 &&
      !t.http1_logged) {
    t.http1_logged = true;
    log::info("apiserver did not negotiate HTTP/2: checking with a GET every interval, as before")
        .kv("endpoint", t.up->name())
        .kv("path", cfg_.path)
        .kv("interval_ms", static_cast<int64_t>(cfg_.interval.count()));
  }
}

void HealthChecker::on_probe_event(Target &t, const ProbeEvent &e) {
  if (t.retired || stopped_) {
    return;
  }
  const TimePoint now = time_.now();
  switch (e.kind) {
  case ProbeEvent::Kind::PingAck:
    t.rtt.add_sample(RttSource::Ping, e.rtt);
    t.up->check_history.add(CheckSample{
        mono_ms(now),
        static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(e.rtt).count()),
        CheckResult::Ok, true});
    apply(t, Observation::PingAnswered, CheckResult::Ok, now, nullptr);
    break;
  case ProbeEvent::Kind::GoAway:
    // A graceful goodbye (a draining apiserver closing its connections): ask /readyz now, on a
    // new connection.
    apply(t, Observation::GoAway, CheckResult::Ok, now, nullptr);
    if (t.budget.on_passive(PassiveEvidence::GoAway, now)) {
      log::info("health check connection got GOAWAY; re-checking").kv("endpoint", t.up->name());
    }
    break;
  }
  arm(t);
  notify_all();
}

void HealthChecker::on_idle_close(Target &t) {
  // The apiserver closed our idle check connection: it may be going away. Look now; the
  // re-check's own result (refused, or fine on a fresh connection) is what counts. Rate limited
  // by the budget (at most one per second): a server that closes every kept-alive connection
  // after its answer (or sends a stray byte) would otherwise be checked back to back at
  // round-trip speed, each check on a new TLS connection.
  if (t.in_flight || t.retired || stopped_) {
    return;
  }
  const TimePoint now = time_.now();
  t.budget.set_way(Liveness::Unknown, now);
  const bool recheck = t.budget.on_passive(PassiveEvidence::IdleClose, now);
  if (log::v(1)) {
    log::debug("health check connection closed by peer")
        .kv("endpoint", t.up->name())
        .kv("recheck_now", recheck);
  }
  arm(t);
}

bool HealthChecker::other_ready(const Target &t) const {
  return std::any_of(targets_.begin(), targets_.end(), [&t](const auto &o) {
    return o && o.get() != &t && !o->retired && o->verdict.ready();
  });
}

void HealthChecker::publish(Target &t) {
  auto &hc = t.up->health_counters;
  hc.alive.store(!t.verdict.dead(), std::memory_order_relaxed);
  hc.dead_by.store(t.verdict.dead() ? static_cast<uint8_t>(t.verdict.dead_by()) + 1 : 0,
                   std::memory_order_relaxed);
  hc.outside_not_ready.store(t.verdict.outside_not_ready(), std::memory_order_relaxed);
}

bool HealthChecker::set_outside_not_ready(const std::string &endpoint, bool on,
                                          const std::string &source) {
  if (stopped_) {
    return false;
  }
  for (auto &tp : targets_) {
    if (!tp || tp->retired || tp->up->name() != endpoint) {
      continue;
    }
    Target &t = *tp;
    if (t.verdict.outside_not_ready() == on) {
      t.outside_why = on ? source : std::string();
      return true;
    }
    const Health before = t.up->health();
    t.verdict.set_outside_not_ready(on);
    t.outside_why = on ? source : std::string();
    publish(t);
    const Health after = t.verdict.health();
    log::info(on ? "health: held not ready by an outside signal"
                 : "health: outside not-ready signal lifted")
        .kv("endpoint", endpoint)
        .kv("source", source)
        .kv("health", to_string(after))
        .kv("close_connections", false);
    if (before != after) {
      t.up->set_health(after);
      t.up->health_counters.transitions.fetch_add(1, std::memory_order_relaxed);
      if (after == Health::Up) {
        t.up->set_up_since_ms(mono_ms(time_.now()));
      }
      // L7STS: a soft reason (a drain), so the owner closes nothing.
      notices_.push_back(Notice{t.up, before, after, CheckResult::L7Sts});
    }
    notify_all();
    return true;
  }
  return false;
}

void HealthChecker::apply(Target &t, Observation ob, CheckResult why, TimePoint now,
                          const ProbeOutcome *po) {
  Upstream &up = *t.up;
  auto &hc = up.health_counters;
  // What the proxy saw before, which differs from the verdict's old state only when the verdict
  // was restarted (a reload that re-created the Upstream).
  const Health before = up.health();
  const VerdictUpdate u = t.verdict.record(ob);
  const Health after = t.verdict.health();
  publish(t);
  hc.rtt_micros.store(micros(t.rtt.srtt()), std::memory_order_relaxed);
  hc.timeout_micros.store(
      micros(std::chrono::duration_cast<std::chrono::microseconds>(t.rtt.timeout())),
      std::memory_order_relaxed);
  const bool changed = before != after;
  if (changed) {
    up.set_health(after);
    hc.transitions.fetch_add(1, std::memory_order_relaxed);
    hc.health_since_ms.store(mono_ms(now), std::memory_order_relaxed);
    if (after == Health::Up) {
      // Slow start ramps only an endpoint seen failed before (as HAProxy: never at start-up,
      // when every endpoint comes up at once and none should be starved).
      up.set_up_since_ms(before == Health::Down ? mono_ms(now) : 0);
    }
    notices_.push_back(Notice{t.up, before, after, why});
  }
  const bool verbose = po ? log::v(2) : log::v(3); // PINGs are many: one level quieter
  if (changed || u.ready.transition != Transition::Unchanged || u.old_life != u.new_life ||
      verbose) {
    const char *msg = u.ready.first && po                               ? "health first check"
                      : changed                                         ? "health transition"
                      : u.ready.transition == Transition::ChangePending ? "health check"
                                                                        : "health check unchanged";
    auto line = changed || u.ready.transition != Transition::Unchanged || u.old_life != u.new_life
                    ? log::info(msg)
                    : log::debug(msg);
    line.kv("endpoint", up.name())
        .kv("health", to_string(after))
        .kv("progress", t.verdict.tracker().progress())
        .kv("reason",
            ob == Observation::PingAnswered ? std::string("PING") : reason_of(why, cfg_.mode))
        .kv("layer", layer_of(why, cfg_.mode))
        .kv("observed", to_string(ob))
        .kv("alive", to_string(t.verdict.life()));
    if (po && po->status != 0) {
      line.kv("status", po->status);
    }
    if (po && !po->detail.empty()) {
      line.kv("detail", po->detail);
    }
    if (po) {
      line.kv("check_ms", static_cast<double>(po->duration.count()) / 1000.0);
    }
    if (ob == Observation::Stalled) {
      line.kv("send_queue_bytes", t.stall.outstanding())
          .kv("stuck_ms", static_cast<int64_t>(t.stall.stuck_for(now).count()));
    }
    if (u.became_dead()) {
      line.kv("dead_by", to_string(t.verdict.dead_by()));
    }
    if (t.verdict.outside_not_ready()) {
      line.kv("held_by", t.outside_why);
    }
    line.kv("rtt_ms", static_cast<double>(t.rtt.srtt().count()) / 1000.0)
        .kv("timeout_ms", static_cast<int64_t>(t.rtt.timeout().count()));
    if (changed && !u.ready.first) {
      line.kv("was", to_string(before));
    }
  }
  if (t.verdict.dead()) {
    try_close(t, is_hard_failure(why) ? why : hard_result_of(ob), now);
  }
}

void HealthChecker::try_close(Target &t, CheckResult why, TimePoint now) {
  Upstream &up = *t.up;
  const CloseDecision d = t.verdict.decide_close(now, t.rtt.timeout(), other_ready(t));
  const uint64_t prevented = t.verdict.prevented_closes();
  if (prevented > t.prevented_published) {
    up.counters.closes_prevented.fetch_add(prevented - t.prevented_published,
                                           std::memory_order_relaxed);
    t.prevented_published = prevented;
    log::info("health dead verdict: connections kept")
        .kv("endpoint", up.name())
        .kv("because", to_string(d))
        .kv("dead_by", to_string(t.verdict.dead_by()));
  }
  if (d != CloseDecision::Close) {
    return;
  }
  // Crashed, hung or cut off, and nothing contradicts it: sessions bound to it will not recover.
  up.bump_kill_epoch();
  log::info("health dead verdict: closing connections")
      .kv("endpoint", up.name())
      .kv("health", to_string(t.verdict.health()))
      .kv("reason", to_string(why))
      .kv("dead_by", to_string(t.verdict.dead_by()))
      .kv("close_connections", true);
  notices_.push_back(Notice{t.up, Health::Down, Health::Down, why});
}

void HealthChecker::notify_all() {
  if (notices_.empty() || !on_transition_) {
    notices_.clear();
    return;
  }
  std::vector<Notice> n = std::move(notices_);
  notices_.clear();
  for (const auto &x : n) {
    on_transition_(*x.up, x.old_h, x.new_h, x.why);
  }
}

} // namespace kal
