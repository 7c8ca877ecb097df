//===- PagePool.cpp - Paged KV cache bookkeeping --------------------------===//
//
// Page allocation, reference counts, copy-on-write and the prefix cache of
// PagePool.h. Every operation that can fail checks first and then mutates,
// so a failure leaves the pool and every sequence as they were.
//
//===----------------------------------------------------------------------===//

#include "runtime/generate/PagePool.h"
#include "runtime/generate/Mix.h"

#include <algorithm>
#include <limits>

namespace moec::runtime {

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

} // namespace

StatusOr<PagePool> PagePool::create(const PagePoolConfig &config) {
  auto positive = [](const char *field, int64_t value) -> Status {
    if (value > 0)
      return Status::ok();
    return makeError(StatusCode::kInvalidArgument, "KV cache: `", field,
                     "` must be > 0, but got ", value);
  };
  MOEC_RETURN_IF_ERROR(positive("tokens_per_page", config.tokensPerPage));
  MOEC_RETURN_IF_ERROR(
      positive("bytes_per_token_per_layer", config.bytesPerTokenPerLayer));
  MOEC_RETURN_IF_ERROR(positive("num_layers", config.numLayers));
  MOEC_RETURN_IF_ERROR(positive("budget_bytes", config.budgetBytes));
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (config.bytesPerTokenPerLayer > kMax / config.tokensPerPage ||
      config.bytesPerTokenPerLayer * config.tokensPerPage >
          kMax / config.numLayers)
    return makeError(StatusCode::kInvalidArgument, "KV cache: a page of ",
                     config.tokensPerPage, " tokens x ", config.numLayers,
                     " layers x ", config.bytesPerTokenPerLayer,
                     " bytes overflows 64 bits");
  int64_t pageBytes =
      config.tokensPerPage * config.bytesPerTokenPerLayer * config.numLayers;
  int64_t pages = config.budgetBytes / pageBytes;
  if (pages == 0)
    return makeError(StatusCode::kInvalidArgument, "KV cache: the budget of ",
                     config.budgetBytes, " bytes holds no page of ", pageBytes,
                     " bytes (", config.tokensPerPage, " tokens x ",
                     config.numLayers, " layers x ",
                     config.bytesPerTokenPerLayer, " bytes)");
  pages = std::min<int64_t>(pages, std::numeric_limits<int32_t>::max());
  return PagePool(static_cast<int32_t>(pages), config.tokensPerPage, pageBytes);
}

PagePool::PagePool(int32_t numPages, int64_t tokensPerPage, int64_t pageBytes)
    : tokensPerPage_(tokensPerPage), pageBytes_(pageBytes),
      refCount_(numPages, 0) {
  // Pop order 0, 1, 2, ...: the lowest ids are handed out first.
  freeList_.reserve(numPages);
  for (int32_t p = numPages - 1; p >= 0; --p)
    freeList_.push_back(p);
}

StatusOr<PageTable *> PagePool::lookup(SequenceId id) {
  auto it = tables_.find(id);
  if (it == tables_.end())
    return makeError(StatusCode::kNotFound, "KV cache: no sequence ", id);
  return &it->second;
}

const PageTable *PagePool::pageTable(SequenceId id) const {
  auto it = tables_.find(id);
  return it == tables_.end() ? nullptr : &it->second;
}

int32_t PagePool::takePage() {
  int32_t page;
  if (!freeList_.empty()) {
    page = freeList_.back();
    freeList_.pop_back();
  } else {
    // Evict the least recently released cached page (callers checked that
    // one exists).
    page = idleLru_.front();
    idleLru_.pop_front();
    auto it = cache_.find(page);
    cacheByHash_.erase(it->second.hash);
    cache_.erase(it);
  }
  refCount_[page] = 1;
  return page;
}

void PagePool::retain(int32_t page) {
  if (refCount_[page]++ == 0)
    idleLru_.erase(cache_.at(page).lru);
}

void PagePool::unref(int32_t page) {
  if (--refCount_[page] != 0)
    return;
  auto it = cache_.find(page);
  if (it == cache_.end()) {
    freeList_.push_back(page);
    return;
  }
  idleLru_.push_back(page);
  it->second.lru = std::prev(idleLru_.end());
}

uint64_t PagePool::hashPage(uint64_t parentHash, const int32_t *tokens) const {
  uint64_t h = splitmix64(parentHash ^ 0x6d6f6563ull);
  for (int64_t i = 0; i < tokensPerPage_; ++i)
    h = splitmix64(h ^ static_cast<uint32_t>(tokens[i]));
  return h;
}

int32_t PagePool::findCached(uint64_t parentHash, const int32_t *tokens) const {
  auto it = cacheByHash_.find(hashPage(parentHash, tokens));
  if (it == cacheByHash_.end())
    return -1;
  // The content is compared too, so a hash collision never serves another
  // prefix's K/V.
  const CachedPage &cached = cache_.at(it->second);
  if (cached.parentHash != parentHash ||
      !std::equal(cached.tokens.begin(), cached.tokens.end(), tokens))
    return -1;
  return it->second;
}

Status PagePool::addSequence(SequenceId id) {
  if (tables_.count(id))
    return makeError(StatusCode::kInvalidArgument, "KV cache: sequence ", id,
                     " already exists");
  tables_.emplace(id, PageTable());
  return Status::ok();
}

StatusOr<int64_t>
PagePool::addSequenceWithPrefix(SequenceId id,
                                const std::vector<int32_t> &prompt) {
  MOEC_RETURN_IF_ERROR(addSequence(id));
  PageTable &table = tables_[id];
  int64_t prompts = static_cast<int64_t>(prompt.size());
  // Full pages only, and never the whole prompt: its last token's logits
  // must be computed.
  int64_t maxPages = prompts > 0 ? (prompts - 1) / tokensPerPage_ : 0;
  uint64_t parent = 0;
  for (int64_t i = 0; i < maxPages; ++i) {
    const int32_t *tokens = prompt.data() + i * tokensPerPage_;
    int32_t page = findCached(parent, tokens);
    if (page < 0)
      break;
    retain(page);
    parent = cache_.at(page).hash;
    table.pages.push_back(page);
    table.pageHashes.push_back(parent);
    table.tokens.insert(table.tokens.end(), tokens, tokens + tokensPerPage_);
  }
  return static_cast<int64_t>(table.tokens.size());
}

Status PagePool::fork(SequenceId parent, SequenceId child) {
  MOEC_ASSIGN_OR_RETURN(PageTable * source, lookup(parent));
  PageTable copy = *source;
  MOEC_RETURN_IF_ERROR(addSequence(child));
  for (int32_t page : copy.pages)
    retain(page);
  tables_[child] = std::move(copy);
  return Status::ok();
}

StatusOr<int64_t> PagePool::pagesNeeded(SequenceId id,
                                        int64_t numTokens) const {
  const PageTable *table = pageTable(id);
  if (!table)
    return makeError(StatusCode::kNotFound, "KV cache: no sequence ", id);
  if (numTokens < 0)
    return makeError(StatusCode::kInvalidArgument, "KV cache: cannot append ",
                     numTokens, " tokens");
  int64_t length = static_cast<int64_t>(table->tokens.size());
  int64_t pages = static_cast<int64_t>(table->pages.size());
  bool copyOnWrite = numTokens > 0 && length % tokensPerPage_ != 0 &&
                     refCount_[table->pages.back()] > 1;
  return ceilDiv(length + numTokens, tokensPerPage_) - pages +
         (copyOnWrite ? 1 : 0);
}

Status PagePool::exhausted(SequenceId id, int64_t numTokens,
                           int64_t needed) const {
  return makeError(StatusCode::kOutOfMemory, "KV cache exhausted: sequence ",
                   id, " needs ", needed, " more pages for ", numTokens,
                   " tokens, but ", numAvailablePages(), " of the pool's ",
                   numPages(), " pages of ", tokensPerPage_,
                   " tokens are available");
}

StatusOr<std::vector<PageCopy>>
PagePool::append(SequenceId id, const int32_t *tokens, int64_t numTokens) {
  MOEC_ASSIGN_OR_RETURN(int64_t needed, pagesNeeded(id, numTokens));
  if (needed > numAvailablePages())
    return exhausted(id, numTokens, needed);
  PageTable &table = tables_[id];
  std::vector<PageCopy> copies;
  int64_t length = static_cast<int64_t>(table.tokens.size());
  int64_t filled = length % tokensPerPage_;
  if (numTokens > 0 && filled != 0 && refCount_[table.pages.back()] > 1) {
    int32_t shared = table.pages.back();
    int32_t own = takePage();
    copies.push_back({shared, own, filled});
    unref(shared);
    table.pages.back() = own;
  }
  while (static_cast<int64_t>(table.pages.size()) * tokensPerPage_ <
         length + numTokens)
    table.pages.push_back(takePage());
  table.tokens.insert(table.tokens.end(), tokens, tokens + numTokens);
  return copies;
}

Status PagePool::publishFullPages(SequenceId id) {
  MOEC_ASSIGN_OR_RETURN(PageTable * table, lookup(id));
  size_t fullPages = table->tokens.size() / tokensPerPage_;
  for (size_t i = table->pageHashes.size(); i < fullPages; ++i) {
    uint64_t parent = i == 0 ? 0 : table->pageHashes[i - 1];
    const int32_t *tokens = table->tokens.data() + i * tokensPerPage_;
    uint64_t hash = hashPage(parent, tokens);
    table->pageHashes.push_back(hash);
    int32_t page = table->pages[i];
    // Already published (a forked sibling did), or the same content is
    // cached in another page: then this page stays private.
    if (cache_.count(page) || cacheByHash_.count(hash))
      continue;
    CachedPage cached;
    cached.hash = hash;
    cached.parentHash = parent;
    cached.tokens.assign(tokens, tokens + tokensPerPage_);
    cache_.emplace(page, std::move(cached));
    cacheByHash_.emplace(hash, page);
  }
  return Status::ok();
}

Status PagePool::release(SequenceId id) {
  MOEC_ASSIGN_OR_RETURN(PageTable * table, lookup(id));
  // Back to front, so that a prefix's later pages are evicted before its
  // first ones (a shorter prefix stays reusable longer).
  for (auto it = table->pages.rbegin(); it != table->pages.rend(); ++it)
    unref(*it);
  tables_.erase(id);
  return Status::ok();
}

} // namespace moec::runtime
