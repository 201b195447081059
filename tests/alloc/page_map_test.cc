#include "alloc/page_map.h"

#include <cstdint>

#include "alloc/config.h"
#include "alloc/os.h"
#include "gtest/gtest.h"

namespace strata::internal {
namespace {

TEST(PageMapTest, RegisterLookupUnregister) {
  PageMap* map = new PageMap();  // 128 KiB: keep it off the test's stack
  const size_t bytes = 3 * kArenaSize;
  void* region = os::MapAligned(bytes, kArenaSize);
  ASSERT_NE(region, nullptr);
  int header = 0;
  char* base = static_cast<char*>(region);
  EXPECT_EQ(map->Lookup(base), nullptr);
  ASSERT_TRUE(map->Register(base, bytes, &header, /*is_arena=*/false));
  EXPECT_FALSE(map->InArena(base));
  EXPECT_EQ(map->Lookup(base), &header);
  EXPECT_EQ(map->Lookup(base + 12345), &header);
  EXPECT_EQ(map->Lookup(base + bytes - 1), &header);
  EXPECT_EQ(map->Lookup(base + bytes), nullptr);
  EXPECT_EQ(map->Lookup(base - 1), nullptr);
  map->Unregister(base, bytes);
  EXPECT_EQ(map->Lookup(base + 12345), nullptr);
  // An arena's entry is tagged: InArena() sees it, Lookup() strips the tag.
  ASSERT_TRUE(map->Register(base, kArenaSize, base, /*is_arena=*/true));
  EXPECT_TRUE(map->InArena(base + 4096));
  EXPECT_EQ(map->Lookup(base + 4096), base);
  EXPECT_FALSE(map->InArena(base + kArenaSize));
  map->Unregister(base, kArenaSize);
  EXPECT_FALSE(map->InArena(base + 4096));
  os::Unmap(region, bytes);
  delete map;
}

TEST(PageMapTest, AddressesOutsideUserSpaceAreNotOurs) {
  PageMap* map = new PageMap();
  EXPECT_EQ(map->Lookup(nullptr), nullptr);
  EXPECT_FALSE(map->InArena(nullptr));
  EXPECT_EQ(map->Lookup(reinterpret_cast<void*>(uintptr_t{1} << 47)), nullptr);
  EXPECT_EQ(map->Lookup(reinterpret_cast<void*>(~uintptr_t{0})), nullptr);
  delete map;
}

}  // namespace
}  // namespace strata::internal
