#pragma once
// `kube-api-lb prepare-state-dir`: what the generated static pod's init container runs before the
// proxy when discovery keeps a state file. kubelet creates a DirectoryOrCreate hostPath owned by
// root, mode 0755, and fsGroup does not apply to hostPath volumes, so the proxy (uid 65532, no
// capabilities) could never write its last-known-good state there. The init container (root, with
// CAP_CHOWN and CAP_FOWNER only) hands the directory over to the proxy's user once.
#include "kube_api_lb/core/result.h"

#include <string>
#include <sys/types.h>

namespace kal {

// Makes `dir` a directory owned by uid:gid with mode 0750: created if missing (its parent must
// exist); left alone if it already is (its mode set back to 0750 if it was not). Only an empty
// root-owned directory is handed over, as kubelet's DirectoryOrCreate makes it: one that holds
// files is shared with something else (a state file in /etc/kubernetes would otherwise give that
// directory to the proxy's user), one owned by another user is not kubelet's; both are refused.
// So are a symlink, a non-directory and a path not in plain absolute form. The checks and the
// change are made on one descriptor. Returns what it did, in words ("created, owned by
// 65532:65532, mode 0750", "handed over to ...", "already owned by ...").
Result<std::string> prepare_state_dir(const std::string &dir, uid_t uid, gid_t gid);

// Entry point of the subcommand: argv[0] is "prepare-state-dir", then --dir=PATH (required) and
// --owner=UID:GID (default 65532:65532). Exit 0 done (one line on stdout), 2 bad flags, 1 failed
// (one line on stderr naming the directory, the call and the errno text).
int prepare_state_dir_main(int argc, char **argv);

} // namespace kal
