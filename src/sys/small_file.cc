#include "sys/small_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace kal {

SmallFile read_small_file(const std::string &path, size_t max_bytes) {
  SmallFile f;
  // O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    f.err = errno;
    f.status = f.err == ENOENT ? SmallFile::Status::Missing : SmallFile::Status::OpenFailed;
    return f;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    f.err = errno;
    f.status = SmallFile::Status::ReadFailed;
  } else if (!S_ISREG(st.st_mode)) {
    f.status = SmallFile::Status::NotRegular;
  } else {
    char buf[65536];
    while (true) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        f.err = errno;
        f.status = SmallFile::Status::ReadFailed;
        break;
      }
      if (n == 0) {
        break;
      }
      f.text.append(buf, static_cast<size_t>(n));
      if (f.text.size() > max_bytes) {
        f.status = SmallFile::Status::TooLarge;
        break;
      }
    }
  }
  ::close(fd);
  if (!f.ok()) {
    f.text.clear();
  }
  return f;
}

} // namespace kal
