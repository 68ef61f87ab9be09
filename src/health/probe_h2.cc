// Probe, HTTP/2 part: a kept-alive check connection that negotiated ALPN h2 carries /readyz as an
// HTTP/2 request and the liveness PINGs (H2Check does the framing).
#include "health/probe.h"

namespace kal {

bool Probe::ping(TimePoint now) {
  if (!h2() || !h2_->ping(now)) {
    return false;
  }
  flush_h2();
  return true;
}

size_t Probe::expire_pings(TimePoint deadline) { return h2_ ? h2_->expire_pings(deadline) : 0; }

std::optional<TimePoint> Probe::oldest_ping() const {
  return h2_ ? h2_->oldest_ping() : std::nullopt;
}

void Probe::flush_h2() {
  if (!h2_ || !tls_) {
    return;
  }
  std::string out;
  if (h2_->take_output(out) == 0) {
    return;
  }
  if (!tls_->write(out)) {
    on_closed(tls_->error());
    return;
  }
  flush();
}

void Probe::on_h2_plaintext(const std::string &plain, TlsEngine::ReadStatus st) {
  H2Check::Fed f = h2_->feed(plain, time_.now());
  if (!f.ok) {
    // The peer broke HTTP/2 (garbage, a protocol violation): say so and drop the connection.
    std::string why = "HTTP/2 protocol error: " + h2_->error();
    flush_h2(); // the GOAWAY libnghttp2 queued, best effort
    const bool requesting = phase_ == Phase::Requesting;
    close_connection();
    if (requesting) {
      finish(CheckResult::L7Rsp, why);
    } else if (on_idle_close_) {
      on_idle_close_();
    }
    return;
  }
  flush_h2(); // SETTINGS and PING acks the server expects
  if (!tls_) {
    return;
  }
  if (on_event_) {
    for (const auto rtt : f.ping_acks) {
      on_event_(ProbeEvent{ProbeEvent::Kind::PingAck, rtt});
    }
    if (f.goaway) {
      on_event_(ProbeEvent{ProbeEvent::Kind::GoAway, {}});
    }
  }
  if (f.answer && phase_ == Phase::Requesting) {
    phase_ = Phase::Idle;
    rtt_ = f.answer->rtt;
    const int status = f.answer->status;
    if (st != TlsEngine::ReadStatus::Ok) {
      close_connection();
    }
    if (f.answer->failed) {
      finish(CheckResult::L7Rsp, f.answer->detail, status);
    } else if (status == 200) {
      finish(CheckResult::Ok, "", status);
    } else if (status == 401 || status == 403) {
      finish(CheckResult::L7Auth, "HTTP " + std::to_string(status), status);
    } else {
      finish(CheckResult::L7Sts, "HTTP " + std::to_string(status), status);
    }
    return;
  }
  if (st != TlsEngine::ReadStatus::Ok) {
    on_closed(st == TlsEngine::ReadStatus::Failed
                  ? tls_->error()
                  : std::string("connection closed (close_notify)"));
  }
}

} // namespace kal
