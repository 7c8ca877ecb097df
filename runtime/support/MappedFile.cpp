//===- MappedFile.cpp - A file mapping that survives in-place edits -------===//
//
// The SIGBUS guard is one process-wide handler over a fixed table of mapped
// ranges, read lock-free from the handler. A fault inside a range maps an
// anonymous zero page over the faulting page (a raw mmap system call, which
// is safe in a signal handler) and marks the range; any other SIGBUS goes to
// the handler that was installed before, or kills the process as it would
// have without us.
//
//===----------------------------------------------------------------------===//

#include "runtime/support/MappedFile.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace moec::runtime {

namespace {

/// Ranges the guard watches: more artifacts than a process opens at once.
constexpr int kGuardSlots = 64;

struct GuardSlot {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<bool> faulted{false};
};

GuardSlot gSlots[kGuardSlots];
struct sigaction gPrevious;
std::once_flag gInstallOnce;
std::mutex gSlotsMutex;

void onSigbus(int signo, siginfo_t *info, void *context) {
  auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (GuardSlot &slot : gSlots) {
    uintptr_t begin = slot.begin.load(std::memory_order_acquire);
    if (begin == 0 || addr < begin ||
        addr >= slot.end.load(std::memory_order_acquire))
      continue;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t base = addr & ~uintptr_t(page - 1);
    long mapped = syscall(SYS_mmap, base, page, PROT_READ,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (mapped != -1) {
      slot.faulted.store(true, std::memory_order_release);
      return;
    }
    break;
  }
  // Not ours: behave as if this handler were not there.
  if (gPrevious.sa_flags & SA_SIGINFO) {
    if (gPrevious.sa_sigaction) {
      gPrevious.sa_sigaction(signo, info, context);
      return;
    }
  } else if (gPrevious.sa_handler != SIG_DFL &&
             gPrevious.sa_handler != SIG_IGN) {
    gPrevious.sa_handler(signo);
    return;
  }
  signal(SIGBUS, SIG_DFL);
  raise(SIGBUS);
}

void installGuard() {
  struct sigaction action = {};
  action.sa_sigaction = onSigbus;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, &gPrevious);
}

int guardRange(const void *data, uint64_t size) {
  std::call_once(gInstallOnce, installGuard);
  std::lock_guard<std::mutex> lock(gSlotsMutex);
  for (int i = 0; i < kGuardSlots; ++i)
    if (gSlots[i].begin.load() == 0) {
      gSlots[i].faulted.store(false);
      gSlots[i].end.store(reinterpret_cast<uintptr_t>(data) + size);
      gSlots[i].begin.store(reinterpret_cast<uintptr_t>(data),
                            std::memory_order_release);
      return i;
    }
  return -1;
}

bool sameTime(const struct timespec &a, const struct timespec &b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

} // namespace

StatusOr<std::unique_ptr<MappedFile>>
MappedFile::open(const std::string &path) {
  MOEC_ASSIGN_OR_RETURN(RegularFile file, openRegularFile(path));
  std::unique_ptr<MappedFile> mapped(new MappedFile());
  mapped->path_ = path;
  mapped->size_ = file.size;
  struct stat st;
  if (::fstat(file.fd.get(), &st) != 0)
    return makeError(StatusCode::kIoError, path,
                     ": cannot stat: ", std::strerror(errno));
  mapped->mtime_ = st.st_mtim;
  if (file.size > 0) {
    void *map =
        mmap(nullptr, file.size, PROT_READ, MAP_PRIVATE, file.fd.get(), 0);
    if (map == MAP_FAILED)
      return makeError(StatusCode::kIoError, path,
                       ": cannot map: ", std::strerror(errno));
    mapped->data_ = static_cast<const uint8_t *>(map);
    mapped->guardSlot_ = guardRange(map, file.size);
  }
  mapped->fd_ = std::move(file.fd);
  return mapped;
}

MappedFile::~MappedFile() {
  if (guardSlot_ >= 0) {
    std::lock_guard<std::mutex> lock(gSlotsMutex);
    gSlots[guardSlot_].begin.store(0, std::memory_order_release);
  }
  if (data_)
    munmap(const_cast<uint8_t *>(data_), size_);
}

Status MappedFile::checkUnchanged() const {
  struct stat st;
  bool faulted = guardSlot_ >= 0 &&
                 gSlots[guardSlot_].faulted.load(std::memory_order_acquire);
  bool changed = faulted;
  if (!changed && ::fstat(fd_.get(), &st) == 0)
    // Size and modification time, not ctime: renaming a new file over the
    // path unlinks this one, which changes its ctime but not its bytes.
    changed = uint64_t(st.st_size) != size_ || !sameTime(st.st_mtim, mtime_);
  if (!changed)
    return Status();
  return makeError(
      StatusCode::kCorrupt, path_,
      ": the file was changed in place while in use",
      faulted ? " (it shrank under the running model)" : "",
      "; results since the change are discarded. Replace a deployed file by "
      "writing the new one elsewhere and renaming it over the old path");
}

} // namespace moec::runtime
