// Reading a whole file of configuration size (a config file, a kubeconfig and the files it names,
// the discovery state): bounded, regular files only, EINTR retried. A FIFO or a device named by
// mistake must neither block the event loop (the open does not wait for a writer) nor feed it
// forever; each caller words the failure for its own file.
#pragma once

#include <cstddef>
#include <string>

namespace kal {

struct SmallFile {
  enum class Status { Ok, Missing, OpenFailed, NotRegular, ReadFailed, TooLarge };
  Status status = Status::Ok;
  int err = 0;      // errno, for Missing, OpenFailed and ReadFailed
  std::string text; // the whole content, when Ok
  bool ok() const { return status == Status::Ok; }
};

SmallFile read_small_file(const std::string &path, size_t max_bytes);

} // namespace kal
