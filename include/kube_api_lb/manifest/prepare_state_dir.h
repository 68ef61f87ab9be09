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
// exist), left alone if it already is. A symlink, a non-directory or a relative path is an error.
// Files inside are not touched (the proxy replaces its state file by rename, whoever owned the
// old one). Returns what it did, in words ("created, owned by 65532:65532, mode 0750", "handed
// over to ...", "already owned by ...").
Result<std::string> prepare_state_dir(const std::string &dir, uid_t uid, gid_t gid);

// Entry point of the subcommand: argv[0] is "prepare-state-dir", then --dir=PATH (required) and
// --owner=UID:GID (default 65532:65532). Exit 0 done (one line on stdout), 2 bad flags, 1 failed
// (one line on stderr naming the directory, the call and the errno text).
int prepare_state_dir_main(int argc, char **argv);

} // namespace kal
