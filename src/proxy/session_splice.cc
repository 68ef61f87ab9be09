// Session's splice(2) path: when a direction moves from read/write to the kernel pipe
// (proxy/splice_pipe.h) and what the pump's stop reason means for the relay. Kept apart from
// session.cc so the relay reads on its own.
#include "proxy/session.h"

#include "kube_api_lb/log/logger.h"
#include "proxy/worker.h"

namespace kal {
namespace {

constexpr Direction kUp = Direction::ToUpstream;

} // namespace

bool Session::enter_splice(Direction d) {
  Flow &f = flow(d);
  if (closed_ || io_.splicing(d) || f.eof || f.paused || f.pending != 0 || !upstream_connected_ ||
      can_replay(facts()) || (d == kUp && upstream_broken_)) {
    return false;
  }
  return io_.splice_open(d);
}

void Session::on_splice_ready(Direction d) {
  if (closed_) {
    return;
  }
  splice_pump(d); // restarts the watchers it still needs
}

void Session::splice_pump(Direction d) {
  Flow &f = flow(d);
  auto r = io_.splice_pump(d);
  f.pending = io_.splice_held(d);
  if (r.read > 0) {
    last_activity_ms_ = uv_now(worker_.loop());
    (d == Direction::ToUpstream ? last_from_client_ms_ : last_from_upstream_ms_) =
        last_activity_ms_;
    worker_.add_spliced(r.read);
  }
  ep_.count(d == kUp ? &UpstreamCounters::bytes_to_upstream : &UpstreamCounters::bytes_to_client,
            r.read);
  using Stop = SplicePipe::Pumped::Stop;
  switch (r.stop) {
  case Stop::Waiting:
    return;
  case Stop::DestFailed:
    if (d == kUp) {
      upstream_takes_no_more(); // ends this direction's splicing
    } else {
      close(CloseReason::ClientError);
    }
    return;
  case Stop::SourceFailed:
    if (d == kUp) {
      close(CloseReason::ClientError);
      return;
    }
    [[fallthrough]]; // the upstream's reset ends its bytes like a FIN
  case Stop::SourceEnded:
    // Every byte before the end was delivered: on as with read/write.
    f.eof = true;
    io_.splice_close(d);
    half_close(d);
    if (r.stop == Stop::SourceFailed) {
      upstream_takes_no_more();
    }
    maybe_finish();
    return;
  }
}

} // namespace kal
