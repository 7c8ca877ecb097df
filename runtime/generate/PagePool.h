//===- PagePool.h - Paged KV cache bookkeeping ------------------*- C++ -*-===//
//
// The host-side bookkeeping of the paged KV cache (DESIGN.md §5b): a pool of
// fixed-size pages sized from a byte budget, a free list, reference counts,
// one page table per sequence, copy-on-write after a fork, and a prefix
// cache of full pages keyed by the hash of their token ids. It moves no
// cache bytes: it tells the executor where each token's K/V lives and which
// page copies to make. Not thread-safe (the scheduler's driving thread owns
// it).
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_RUNTIME_GENERATE_PAGEPOOL_H
#define MOEC_RUNTIME_GENERATE_PAGEPOOL_H

#include "runtime/support/Status.h"

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace moec::runtime {

/// Identifies a sequence in a `PagePool` (the scheduler's request id).
using SequenceId = int64_t;

/// How big the pool is. A page holds `tokensPerPage` tokens of every layer:
/// page `p` is entry `p` of each layer's cache tensor, so one page table
/// index serves all layers.
struct PagePoolConfig {
  /// Tokens per page (vLLM's block size); at least 1.
  int64_t tokensPerPage = 16;
  /// Cache bytes of one token in one layer: 2 · kv_heads · head_dim · element
  /// size for K/V, (kv_lora_rank + qk_rope_head_dim) · element size for MLA.
  int64_t bytesPerTokenPerLayer = 0;
  /// Layers that keep a cache.
  int64_t numLayers = 0;
  /// Bytes the pool may use; the page count is the budget divided by the
  /// bytes of one page, rounded down.
  int64_t budgetBytes = 0;
};

/// One sequence's view of the cache: token `i` lives in page
/// `pages[i / tokensPerPage]` at slot `i % tokensPerPage`.
struct PageTable {
  /// Page ids in position order; the last may be partially filled.
  std::vector<int32_t> pages;
  /// The sequence's token ids, one per cached position.
  std::vector<int32_t> tokens;
  /// Chained hashes of the first `pageHashes.size()` full pages, each
  /// published to (or taken from) the prefix cache.
  std::vector<uint64_t> pageHashes;
};

/// A copy the executor must make before the step's cache writes: the first
/// `numTokens` token slots of page `source` to page `destination`, in every
/// layer.
struct PageCopy {
  /// Page read.
  int32_t source = 0;
  /// Page written.
  int32_t destination = 0;
  /// Token slots copied, from slot 0.
  int64_t numTokens = 0;
};

/// The pages of the KV cache and who holds them.
///
/// A page is in exactly one of three states: free (in the free list,
/// count 0), held (count = the number of page tables holding it), or idle
/// cached (count 0, in the prefix cache, evicted least recently used first
/// when the free list runs out). Full pages are published to the prefix
/// cache by `publishFullPages`; partially filled pages never are.
class PagePool {
public:
  /// Sizes the pool from `config`; an error when the budget holds no page.
  static StatusOr<PagePool> create(const PagePoolConfig &config);
  PagePool(PagePool &&) = default;
  PagePool &operator=(PagePool &&) = default;
  // Copies would hold iterators into the original's LRU list.
  PagePool(const PagePool &) = delete;
  PagePool &operator=(const PagePool &) = delete;

  /// Pages in the pool.
  int32_t numPages() const { return static_cast<int32_t>(refCount_.size()); }
  /// Tokens per page.
  int64_t tokensPerPage() const { return tokensPerPage_; }
  /// Bytes of one page across all layers.
  int64_t pageBytes() const { return pageBytes_; }
  /// Pages on the free list.
  int32_t numFreePages() const {
    return static_cast<int32_t>(freeList_.size());
  }
  /// Cached pages no sequence holds (evictable).
  int32_t numIdleCachedPages() const {
    return static_cast<int32_t>(idleLru_.size());
  }
  /// Pages an allocation can get: free plus idle cached.
  int32_t numAvailablePages() const {
    return numFreePages() + numIdleCachedPages();
  }
  /// How many page tables hold `page`.
  int32_t refCount(int32_t page) const { return refCount_[page]; }
  /// Whether `page` is in the prefix cache.
  bool isCached(int32_t page) const { return cache_.count(page) != 0; }

  /// Starts an empty sequence `id`; an error if `id` exists.
  Status addSequence(SequenceId id);
  /// Starts sequence `id` on the longest cached prefix of `prompt` made of
  /// full pages, leaving at least one prompt token to compute (its logits
  /// are needed). Returns the number of tokens taken from the cache, whose
  /// K/V must not be recomputed.
  StatusOr<int64_t> addSequenceWithPrefix(SequenceId id,
                                          const std::vector<int32_t> &prompt);
  /// Starts `child` as a copy of `parent`, sharing every page by reference
  /// count. The shared last page is copied when one of them next appends
  /// (copy-on-write; `append` returns the copy).
  Status fork(SequenceId parent, SequenceId child);
  /// Pages sequence `id` would take to append `numTokens` tokens, counting a
  /// copy-on-write copy.
  StatusOr<int64_t> pagesNeeded(SequenceId id, int64_t numTokens) const;
  /// Reserves cache slots for `numTokens` more tokens of `id` (their ids are
  /// recorded for the prefix cache) and returns the page copies to make
  /// before writing them. When the pool cannot supply the pages the error is
  /// `kOutOfMemory` and the sequence is unchanged.
  StatusOr<std::vector<PageCopy>> append(SequenceId id, const int32_t *tokens,
                                         int64_t numTokens);
  /// Publishes the full pages of `id` not yet in the prefix cache. Call it
  /// only once their K/V has been written (after the step ran).
  Status publishFullPages(SequenceId id);
  /// Ends sequence `id`: each page's count drops; at 0 a cached page becomes
  /// idle cached, any other returns to the free list.
  Status release(SequenceId id);

  /// The page table of `id`, or null.
  const PageTable *pageTable(SequenceId id) const;
  /// Number of live sequences.
  size_t numSequences() const { return tables_.size(); }

private:
  struct CachedPage {
    uint64_t hash = 0;
    uint64_t parentHash = 0;
    std::vector<int32_t> tokens;
    /// Position in `idleLru_` while the count is 0.
    std::list<int32_t>::iterator lru;
  };

  PagePool(int32_t numPages, int64_t tokensPerPage, int64_t pageBytes);
  StatusOr<PageTable *> lookup(SequenceId id);
  int32_t takePage();
  void retain(int32_t page);
  void unref(int32_t page);
  Status exhausted(SequenceId id, int64_t numTokens, int64_t needed) const;
  uint64_t hashPage(uint64_t parentHash, const int32_t *tokens) const;
  /// The cached page with this content, or -1.
  int32_t findCached(uint64_t parentHash, const int32_t *tokens) const;

  int64_t tokensPerPage_;
  int64_t pageBytes_;
  std::vector<int32_t> refCount_;
  /// A stack: the most recently freed page is reused first.
  std::vector<int32_t> freeList_;
  /// Idle cached pages, least recently released first.
  std::list<int32_t> idleLru_;
  std::unordered_map<int32_t, CachedPage> cache_;
  std::unordered_map<uint64_t, int32_t> cacheByHash_;
  std::unordered_map<SequenceId, PageTable> tables_;
};

} // namespace moec::runtime

#endif // MOEC_RUNTIME_GENERATE_PAGEPOOL_H
