#pragma once
// `kube-api-lb manifest`: prints (or writes) the static Pod manifest, and optionally the matching
// config file.

namespace kal {

// Entry point of the subcommand. argv[0] is the subcommand's name ("manifest"), argv[1..] its
// flags: every proxy flag (they make up the Config, as for the proxy itself) plus
//   --image, --name, --namespace, --config-hostpath, --cpu-request, --memory-request,
//   --cpu-limit, --memory-limit, --image-pull-policy, --write-config=PATH, --output=PATH.
// Returns the process exit code: 0 written; 2 bad flags or configuration (one line on stderr,
// "kube-api-lb: error: ..."); 1 an output file could not be written.
int manifest_main(int argc, char **argv);

} // namespace kal
