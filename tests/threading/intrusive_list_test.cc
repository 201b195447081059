#include "threading/intrusive_list.h"

#include <vector>

#include "gtest/gtest.h"

namespace strata::threading {
namespace {

struct Node {
  int value = 0;
  Node* prev = nullptr;
  Node* next = nullptr;
  Node* other_prev = nullptr;  // a second list through other fields
  Node* other_next = nullptr;
};
using List = IntrusiveList<Node, &Node::prev, &Node::next>;
using OtherList = IntrusiveList<Node, &Node::other_prev, &Node::other_next>;

std::vector<int> Values(const List& l) {
  std::vector<int> out;
  for (const Node* n = l.front(); n != nullptr; n = n->next) out.push_back(n->value);
  return out;
}

// Every link agrees with its neighbour's, and the head has no prev.
bool Consistent(const List& l) {
  const Node* prev = nullptr;
  for (const Node* n = l.front(); n != nullptr; prev = n, n = n->next) {
    if (n->prev != prev) return false;
  }
  return true;
}

TEST(IntrusiveListTest, PushFrontOrdersNewestFirst) {
  Node n[3];
  List l;
  EXPECT_TRUE(l.empty());
  for (int i = 0; i < 3; ++i) {
    n[i].value = i;
    l.PushFront(&n[i]);
  }
  EXPECT_FALSE(l.empty());
  EXPECT_EQ(Values(l), (std::vector<int>{2, 1, 0}));
  EXPECT_TRUE(Consistent(l));
}

TEST(IntrusiveListTest, RemoveHeadMiddleTailAndClearsLinks) {
  Node n[4];
  List l;
  for (int i = 0; i < 4; ++i) {
    n[i].value = i;
    l.PushFront(&n[i]);
  }
  l.Remove(&n[2]);  // middle
  EXPECT_EQ(Values(l), (std::vector<int>{3, 1, 0}));
  EXPECT_EQ(n[2].prev, nullptr);
  EXPECT_EQ(n[2].next, nullptr);
  l.Remove(&n[3]);  // head
  EXPECT_EQ(Values(l), (std::vector<int>{1, 0}));
  l.Remove(&n[0]);  // tail
  EXPECT_EQ(Values(l), (std::vector<int>{1}));
  EXPECT_TRUE(Consistent(l));
  l.Remove(&n[1]);  // last
  EXPECT_TRUE(l.empty());
  EXPECT_EQ(l.front(), nullptr);
  l.PushFront(&n[2]);  // a removed node can be linked again
  EXPECT_EQ(Values(l), (std::vector<int>{2}));
}

TEST(IntrusiveListTest, PopFrontEmptiesInOrder) {
  Node n[3];
  List l;
  EXPECT_EQ(l.PopFront(), nullptr);
  for (int i = 0; i < 3; ++i) {
    n[i].value = i;
    l.PushFront(&n[i]);
  }
  EXPECT_EQ(l.PopFront(), &n[2]);
  EXPECT_EQ(n[2].next, nullptr);
  EXPECT_EQ(l.PopFront(), &n[1]);
  EXPECT_EQ(l.PopFront(), &n[0]);
  EXPECT_EQ(l.PopFront(), nullptr);
  EXPECT_TRUE(l.empty());
}

TEST(IntrusiveListTest, TwoListsThroughDifferentFieldsAreIndependent) {
  Node n[3];
  List a;
  OtherList b;
  for (int i = 0; i < 3; ++i) {
    n[i].value = i;
    a.PushFront(&n[i]);
    b.PushFront(&n[2 - i]);
  }
  a.Remove(&n[1]);
  EXPECT_EQ(Values(a), (std::vector<int>{2, 0}));
  std::vector<int> other;
  for (const Node* x = b.front(); x != nullptr; x = x->other_next) other.push_back(x->value);
  EXPECT_EQ(other, (std::vector<int>{0, 1, 2}));
}

}  // namespace
}  // namespace strata::threading
