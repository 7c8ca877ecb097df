//===- PagePoolTest.cpp - Paged KV cache bookkeeping
//-----------------------===//
//
// The page pool: sizing, serving sequences whose total fits but whose
// maximum-length blocks would not, reuse of released pages, a shared prefix
// stored once, copy-on-write after a fork, exhaustion without damage, LRU
// eviction of cached pages, and a randomized stress test against a model
// that stores each page's token ids and the invariants.
//
//===----------------------------------------------------------------------===//

#include "runtime/generate/PagePool.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

using namespace moec::runtime;

namespace {

/// A pool of `pages` pages of `tokensPerPage` tokens (one byte per token).
PagePool makePool(int64_t pages, int64_t tokensPerPage) {
  StatusOr<PagePool> pool =
      PagePool::create({tokensPerPage, 1, 1, pages * tokensPerPage});
  EXPECT_TRUE(pool.isOk()) << pool.status().toString();
  return std::move(pool).value();
}

std::vector<int32_t> iota(int32_t first, int64_t count) {
  std::vector<int32_t> v(count);
  for (int64_t i = 0; i < count; ++i)
    v[i] = first + static_cast<int32_t>(i);
  return v;
}

Status appendAll(PagePool &pool, SequenceId id,
                 const std::vector<int32_t> &tokens) {
  StatusOr<std::vector<PageCopy>> copies =
      pool.append(id, tokens.data(), static_cast<int64_t>(tokens.size()));
  return copies.status();
}

} // namespace

TEST(PagePoolTest, SizedFromTheByteBudget) {
  // 16 tokens x 2 layers x 576 bf16 values: an MLA page of 36,864 bytes.
  StatusOr<PagePool> pool = PagePool::create({16, 576 * 2, 2, 1000000});
  ASSERT_TRUE(pool.isOk());
  EXPECT_EQ(pool->pageBytes(), 36864);
  EXPECT_EQ(pool->numPages(), 27);
  EXPECT_EQ(pool->numFreePages(), 27);

  StatusOr<PagePool> tiny = PagePool::create({16, 1152, 2, 36863});
  EXPECT_EQ(tiny.status().message(),
            "KV cache: the budget of 36863 bytes holds no page of 36864 bytes "
            "(16 tokens x 2 layers x 1152 bytes)");
  StatusOr<PagePool> zero = PagePool::create({0, 1, 1, 100});
  EXPECT_EQ(zero.status().message(),
            "KV cache: `tokens_per_page` must be > 0, but got 0");
}

TEST(PagePoolTest, ServesSequencesWhoseTotalFitsButNotMaxLengthBlocks) {
  // 16 pages of 16 tokens = 256 tokens. Four sequences of a 128-token
  // maximum would need 32 pages as contiguous blocks; their real lengths
  // (30 + 60 + 70 + 75 = 235 tokens, 16 pages) fit.
  PagePool pool = makePool(16, 16);
  const int64_t lengths[] = {30, 60, 70, 75};
  for (SequenceId id = 0; id < 4; ++id)
    ASSERT_TRUE(pool.addSequence(id).isOk());
  // Decode-like growth: interleaved appends of a few tokens.
  for (int64_t done = 0; done < 75; done += 5)
    for (SequenceId id = 0; id < 4; ++id) {
      int64_t n = std::min<int64_t>(5, lengths[id] - done);
      if (n > 0) {
        ASSERT_TRUE(appendAll(pool, id, iota(0, n)).isOk());
      }
    }
  std::set<int32_t> used;
  for (SequenceId id = 0; id < 4; ++id) {
    const PageTable *table = pool.pageTable(id);
    EXPECT_EQ(table->tokens.size(), static_cast<size_t>(lengths[id]));
    EXPECT_EQ(table->pages.size(),
              static_cast<size_t>((lengths[id] + 15) / 16));
    for (int32_t page : table->pages)
      EXPECT_TRUE(used.insert(page).second) << "page " << page << " twice";
  }
  EXPECT_EQ(used.size(), 16u);
  EXPECT_EQ(pool.numFreePages(), 0);
}

TEST(PagePoolTest, ReleasedPagesAreReused) {
  PagePool pool = makePool(8, 4);
  ASSERT_TRUE(pool.addSequence(1).isOk());
  ASSERT_TRUE(pool.addSequence(2).isOk());
  ASSERT_TRUE(appendAll(pool, 1, iota(0, 16)).isOk());
  ASSERT_TRUE(appendAll(pool, 2, iota(0, 16)).isOk());
  EXPECT_EQ(pool.numFreePages(), 0);
  std::vector<int32_t> pagesOf1 = pool.pageTable(1)->pages;
  ASSERT_TRUE(pool.release(1).isOk());
  EXPECT_EQ(pool.numFreePages(), 4);
  ASSERT_TRUE(pool.addSequence(3).isOk());
  ASSERT_TRUE(appendAll(pool, 3, iota(100, 16)).isOk());
  std::vector<int32_t> pagesOf3 = pool.pageTable(3)->pages;
  EXPECT_EQ(std::set<int32_t>(pagesOf3.begin(), pagesOf3.end()),
            std::set<int32_t>(pagesOf1.begin(), pagesOf1.end()));
  EXPECT_EQ(pool.release(1).message(), "KV cache: no sequence 1");
}

TEST(PagePoolTest, SharedPrefixIsStoredOnce) {
  PagePool pool = makePool(16, 16);
  std::vector<int32_t> a = iota(1000, 40);
  ASSERT_TRUE(pool.addSequence(1).isOk());
  ASSERT_TRUE(appendAll(pool, 1, a).isOk());
  ASSERT_TRUE(pool.publishFullPages(1).isOk());

  // The same first 32 tokens (two full pages), then another tail.
  std::vector<int32_t> b(a.begin(), a.begin() + 32);
  std::vector<int32_t> tail = iota(5000, 9);
  b.insert(b.end(), tail.begin(), tail.end());
  StatusOr<int64_t> reused = pool.addSequenceWithPrefix(2, b);
  ASSERT_TRUE(reused.isOk());
  EXPECT_EQ(*reused, 32);
  ASSERT_TRUE(appendAll(pool, 2, tail).isOk());
  const PageTable *ta = pool.pageTable(1), *tb = pool.pageTable(2);
  ASSERT_EQ(tb->pages.size(), 3u);
  EXPECT_EQ(tb->pages[0], ta->pages[0]);
  EXPECT_EQ(tb->pages[1], ta->pages[1]);
  EXPECT_NE(tb->pages[2], ta->pages[2]);
  EXPECT_EQ(pool.refCount(ta->pages[0]), 2);
  EXPECT_EQ(pool.refCount(ta->pages[2]), 1);
  // 41 + 41 tokens in 4 pages, not 6.
  EXPECT_EQ(pool.numPages() - pool.numFreePages(), 4);

  // A prompt that is entirely cached still leaves its last page to compute.
  std::vector<int32_t> c(a.begin(), a.begin() + 32);
  reused = pool.addSequenceWithPrefix(3, c);
  ASSERT_TRUE(reused.isOk());
  EXPECT_EQ(*reused, 16);
  // Another first page shares nothing.
  std::vector<int32_t> d = a;
  d[0] = 7;
  reused = pool.addSequenceWithPrefix(4, d);
  ASSERT_TRUE(reused.isOk());
  EXPECT_EQ(*reused, 0);
}

TEST(PagePoolTest, ForkSharesPagesAndCopiesTheLastOnWrite) {
  PagePool pool = makePool(8, 8);
  ASSERT_TRUE(pool.addSequence(1).isOk());
  ASSERT_TRUE(appendAll(pool, 1, iota(0, 12)).isOk());
  ASSERT_TRUE(pool.fork(1, 2).isOk());
  std::vector<int32_t> parentPages = pool.pageTable(1)->pages;
  EXPECT_EQ(pool.pageTable(2)->pages, parentPages);
  EXPECT_EQ(pool.refCount(parentPages[1]), 2);
  EXPECT_EQ(*pool.pagesNeeded(2, 1), 1);

  int32_t token = 99;
  StatusOr<std::vector<PageCopy>> copies = pool.append(2, &token, 1);
  ASSERT_TRUE(copies.isOk());
  ASSERT_EQ(copies->size(), 1u);
  EXPECT_EQ((*copies)[0].source, parentPages[1]);
  EXPECT_EQ((*copies)[0].numTokens, 4);
  int32_t own = (*copies)[0].destination;
  EXPECT_NE(own, parentPages[1]);
  EXPECT_EQ(pool.pageTable(2)->pages[0], parentPages[0]);
  EXPECT_EQ(pool.pageTable(2)->pages[1], own);
  EXPECT_EQ(pool.refCount(parentPages[1]), 1);
  EXPECT_EQ(pool.refCount(parentPages[0]), 2);
  // The parent now owns its last page alone: no copy.
  copies = pool.append(1, &token, 1);
  ASSERT_TRUE(copies.isOk());
  EXPECT_TRUE(copies->empty());
  EXPECT_EQ(pool.fork(7, 8).message(), "KV cache: no sequence 7");
  EXPECT_EQ(pool.fork(1, 2).message(), "KV cache: sequence 2 already exists");
}

TEST(PagePoolTest, ExhaustionIsAClearErrorThatChangesNothing) {
  PagePool pool = makePool(4, 4);
  ASSERT_TRUE(pool.addSequence(1).isOk());
  ASSERT_TRUE(pool.addSequence(2).isOk());
  ASSERT_TRUE(appendAll(pool, 1, iota(0, 10)).isOk());
  ASSERT_TRUE(appendAll(pool, 2, iota(0, 2)).isOk());
  PageTable before1 = *pool.pageTable(1), before2 = *pool.pageTable(2);
  Status status = appendAll(pool, 2, iota(0, 7));
  EXPECT_EQ(status.code(), StatusCode::kOutOfMemory);
  EXPECT_EQ(status.message(),
            "KV cache exhausted: sequence 2 needs 2 more pages for 7 tokens, "
            "but 0 of the pool's 4 pages of 4 tokens are available");
  EXPECT_EQ(pool.pageTable(2)->pages, before2.pages);
  EXPECT_EQ(pool.pageTable(2)->tokens, before2.tokens);
  EXPECT_EQ(pool.pageTable(1)->pages, before1.pages);
  EXPECT_EQ(pool.pageTable(1)->tokens, before1.tokens);
  // What fits still fits.
  EXPECT_TRUE(appendAll(pool, 2, iota(0, 2)).isOk());
  EXPECT_TRUE(appendAll(pool, 1, iota(0, 2)).isOk());
}

TEST(PagePoolTest, IdleCachedPagesAreEvictedLeastRecentlyUsedFirst) {
  PagePool pool = makePool(4, 2);
  // Two finished sequences leave two cached pages each.
  for (SequenceId id : {1, 2}) {
    ASSERT_TRUE(pool.addSequence(id).isOk());
    ASSERT_TRUE(
        appendAll(pool, id, iota(10 * static_cast<int32_t>(id), 4)).isOk());
    ASSERT_TRUE(pool.publishFullPages(id).isOk());
  }
  std::vector<int32_t> pagesOf2 = pool.pageTable(2)->pages;
  ASSERT_TRUE(pool.release(1).isOk());
  ASSERT_TRUE(pool.release(2).isOk());
  EXPECT_EQ(pool.numFreePages(), 0);
  EXPECT_EQ(pool.numIdleCachedPages(), 4);
  // Two new pages evict sequence 1's (released first); 2's prefix survives.
  ASSERT_TRUE(pool.addSequence(3).isOk());
  ASSERT_TRUE(appendAll(pool, 3, iota(500, 4)).isOk());
  EXPECT_TRUE(pool.isCached(pagesOf2[0]));
  EXPECT_TRUE(pool.isCached(pagesOf2[1]));
  std::vector<int32_t> again = iota(20, 4);
  again.push_back(1);
  StatusOr<int64_t> reused = pool.addSequenceWithPrefix(4, again);
  ASSERT_TRUE(reused.isOk());
  EXPECT_EQ(*reused, 4);
  EXPECT_EQ(pool.pageTable(4)->pages, pagesOf2);
  StatusOr<int64_t> gone = pool.addSequenceWithPrefix(5, iota(10, 5));
  ASSERT_TRUE(gone.isOk());
  EXPECT_EQ(*gone, 0);
}

// Random operations against a model that records the token id written to
// every page slot: reading each sequence through its page table must give
// back its tokens (which checks copy-on-write and prefix reuse), every
// page's count must equal the number of tables holding it, and free +
// held + idle cached must be the pool.
TEST(PagePoolTest, RandomizedStressKeepsTheInvariants) {
  constexpr int64_t kT = 4;
  PagePool pool = makePool(24, kT);
  std::mt19937 rng(2024);
  std::map<int32_t, std::vector<int32_t>> content;  // page -> slot tokens
  std::map<SequenceId, std::vector<int32_t>> model; // sequence -> tokens
  SequenceId nextId = 0;
  int exhausted = 0, forks = 0, reusedTokens = 0;
  auto write = [&](SequenceId id, const std::vector<PageCopy> &copies,
                   int64_t from) {
    for (const PageCopy &c : copies) {
      content[c.destination] = content[c.source];
      content[c.destination].resize(kT, -1);
    }
    const PageTable *table = pool.pageTable(id);
    for (size_t i = from; i < table->tokens.size(); ++i) {
      auto &slots = content[table->pages[i / kT]];
      slots.resize(kT, -1);
      slots[i % kT] = table->tokens[i];
    }
  };
  for (int op = 0; op < 20000; ++op) {
    int kind = rng() % 10;
    if (model.empty() || kind < 2) {
      // A new sequence, often on a prompt shared with an earlier one.
      SequenceId id = nextId++;
      std::vector<int32_t> prompt(1 + rng() % 12);
      for (int32_t &t : prompt)
        t = rng() % 3;
      StatusOr<int64_t> reused = pool.addSequenceWithPrefix(id, prompt);
      ASSERT_TRUE(reused.isOk());
      reusedTokens += static_cast<int>(*reused);
      model[id] =
          std::vector<int32_t>(prompt.begin(), prompt.begin() + *reused);
      std::vector<int32_t> rest(prompt.begin() + *reused, prompt.end());
      StatusOr<std::vector<PageCopy>> copies =
          pool.append(id, rest.data(), rest.size());
      if (!copies.isOk()) {
        ++exhausted;
        ASSERT_EQ(copies.status().code(), StatusCode::kOutOfMemory);
        ASSERT_EQ(pool.pageTable(id)->tokens, model[id]);
      } else {
        write(id, *copies, *reused);
        model[id] = prompt;
      }
    } else {
      auto it = model.begin();
      std::advance(it, rng() % model.size());
      SequenceId id = it->first;
      if (kind < 5) {
        std::vector<int32_t> more(1 + rng() % 6);
        for (int32_t &t : more)
          t = rng() % 50;
        int64_t from = static_cast<int64_t>(model[id].size());
        StatusOr<std::vector<PageCopy>> copies =
            pool.append(id, more.data(), more.size());
        if (!copies.isOk()) {
          ++exhausted;
          ASSERT_EQ(copies.status().code(), StatusCode::kOutOfMemory);
        } else {
          write(id, *copies, from);
          model[id].insert(model[id].end(), more.begin(), more.end());
        }
      } else if (kind < 6) {
        ASSERT_TRUE(pool.fork(id, nextId).isOk());
        model[nextId++] = model[id];
        ++forks;
      } else if (kind < 7) {
        ASSERT_TRUE(pool.publishFullPages(id).isOk());
      } else {
        ASSERT_TRUE(pool.publishFullPages(id).isOk());
        ASSERT_TRUE(pool.release(id).isOk());
        model.erase(id);
      }
    }

    std::map<int32_t, int32_t> holders;
    for (auto &[id, tokens] : model) {
      const PageTable *table = pool.pageTable(id);
      ASSERT_NE(table, nullptr);
      ASSERT_EQ(table->tokens, tokens);
      ASSERT_EQ(table->pages.size(), (tokens.size() + kT - 1) / kT);
      for (int32_t page : table->pages)
        ++holders[page];
      for (size_t i = 0; i < tokens.size(); ++i)
        ASSERT_EQ(content[table->pages[i / kT]][i % kT], tokens[i])
            << "op " << op << ": sequence " << id << " position " << i;
    }
    ASSERT_EQ(pool.numSequences(), model.size());
    int32_t held = 0, idleCached = 0;
    for (int32_t page = 0; page < pool.numPages(); ++page) {
      int32_t count = holders.count(page) ? holders[page] : 0;
      ASSERT_EQ(pool.refCount(page), count) << "op " << op << " page " << page;
      held += count > 0;
      idleCached += count == 0 && pool.isCached(page);
    }
    ASSERT_EQ(idleCached, pool.numIdleCachedPages());
    ASSERT_EQ(pool.numFreePages() + held + idleCached, pool.numPages());
  }
  // The run exercised exhaustion, forks and prefix reuse.
  EXPECT_GT(exhausted, 10);
  EXPECT_GT(forks, 100);
  EXPECT_GT(reusedTokens, 100);
}
