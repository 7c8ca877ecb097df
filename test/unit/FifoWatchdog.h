//===- FifoWatchdog.h - Fail, not hang, when a FIFO blocks ------*- C++ -*-===//
//
// Tests that hand a reader a FIFO must fail if the reader blocks in open(2)
// or read(2), not hang the suite: `returnsWithoutBlocking` runs the reader
// on another thread and, after 10 s, opens and closes the FIFO for writing
// so that the reader returns.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_TEST_UNIT_FIFOWATCHDOG_H
#define MOEC_TEST_UNIT_FIFOWATCHDOG_H

#include <gtest/gtest.h>

#include <chrono>
#include <fcntl.h>
#include <future>
#include <string>
#include <unistd.h>

namespace moec::test {

/// Runs `read` (which opens the FIFO `fifo`) on another thread and returns
/// its result; a read still blocked after 10 s is a test failure.
template <typename Read>
auto returnsWithoutBlocking(const std::string &fifo, Read read) {
  auto result = std::async(std::launch::async, read);
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "reading the FIFO " << fifo << " blocked";
    int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0)
      ::close(fd);
  }
  return result.get();
}

} // namespace moec::test

#endif // MOEC_TEST_UNIT_FIFOWATCHDOG_H
