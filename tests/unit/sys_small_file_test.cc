#include "sys/small_file.h"
#include "temp_dir.h"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string>

using kal::read_small_file;
using kal::SmallFile;

using kal::testing::TempDir;

TEST_CASE("read_small_file: whole, bounded, regular files only, never blocking") {
  TempDir d("kal-small-file");
  const std::string file = d.write("f", std::string(1000, 'x'));
  SmallFile f = read_small_file(file, 1000);
  CHECK(f.ok());
  CHECK(f.text == std::string(1000, 'x'));
  f = read_small_file(file, 999);
  CHECK(f.status == SmallFile::Status::TooLarge);
  CHECK(f.text.empty());

  f = read_small_file(d.path + "/none", 10);
  CHECK(f.status == SmallFile::Status::Missing);
  CHECK(f.err == ENOENT);

  CHECK(read_small_file(d.path, 10).status == SmallFile::Status::NotRegular);
  CHECK(read_small_file("/dev/zero", 10).status == SmallFile::Status::NotRegular);
  // A FIFO with no writer: opening it must not wait for one.
  const std::string fifo = d.path + "/fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(read_small_file(fifo, 10).status == SmallFile::Status::NotRegular);

  if (geteuid() != 0) { // root reads whatever the mode says
    REQUIRE(chmod(file.c_str(), 0) == 0);
    f = read_small_file(file, 1000);
    CHECK(f.status == SmallFile::Status::OpenFailed);
    CHECK(f.err == EACCES);
  }
}
