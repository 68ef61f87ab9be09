#include "kube_api_lb/core/intrusive_list.h"

#include <doctest/doctest.h>

#include <vector>

using namespace kal;

namespace {
struct A;
struct B;
struct Item : ListHook<A>, ListHook<B> {
  explicit Item(int v, int *deleted = nullptr) : value(v), deleted(deleted) {}
  ~Item() {
    if (deleted) {
      ++*deleted;
    }
  }
  int value;
  int *deleted;
};

template <class L> std::vector<int> values(L &l) {
  std::vector<int> v;
  l.for_each([&](Item &i) { v.push_back(i.value); });
  return v;
}
} // namespace

TEST_CASE("IntrusiveList: FIFO order, O(1) erase anywhere, two lists at once") {
  Item a(1), b(2), c(3);
  IntrusiveList<Item, A> la;
  IntrusiveList<Item, B> lb;
  la.push_back(a);
  la.push_back(b);
  la.push_back(c);
  lb.push_back(c);
  lb.push_back(a);
  CHECK(values(la) == std::vector<int>{1, 2, 3});
  CHECK(values(lb) == std::vector<int>{3, 1});
  la.erase(b);
  CHECK(values(la) == std::vector<int>{1, 3});
  la.erase(b); // not linked: nothing
  CHECK(la.size() == 2);
  la.erase(a);
  la.erase(c);
  CHECK(la.empty());
  CHECK(la.front() == nullptr);
  CHECK(values(lb) == std::vector<int>{3, 1}); // the other list is untouched
  lb.clear();
  CHECK_FALSE(static_cast<ListHook<B> &>(a).linked());
}

TEST_CASE("IntrusiveList: for_each survives the visited object unlinking itself") {
  Item a(1), b(2), c(3);
  IntrusiveList<Item, A> l;
  for (Item *i : {&a, &b, &c}) {
    l.push_back(*i);
  }
  std::vector<int> seen;
  l.for_each([&](Item &i) {
    seen.push_back(i.value);
    if (i.value != 3) {
      l.erase(i);
    }
  });
  CHECK(seen == std::vector<int>{1, 2, 3});
  CHECK(values(l) == std::vector<int>{3});
}

TEST_CASE("OwnedList: adopt, release hands ownership back, the destructor frees the rest") {
  int deleted = 0;
  std::unique_ptr<Item> released;
  {
    OwnedList<Item, A> l;
    Item &one = l.adopt(std::make_unique<Item>(1, &deleted));
    l.adopt(std::make_unique<Item>(2, &deleted));
    Item &three = l.adopt(std::make_unique<Item>(3, &deleted));
    CHECK(l.size() == 3);
    CHECK(l.contains(one));
    released = l.release(one);
    CHECK(released.get() == &one);
    CHECK_FALSE(l.contains(one));
    CHECK(l.release(one) == nullptr); // not on the list any more
    // An object released during for_each (a session closing while the worker walks its list).
    std::vector<std::unique_ptr<Item>> graveyard;
    l.for_each([&](Item &i) {
      if (i.value == 2) {
        graveyard.push_back(l.release(i));
      }
    });
    CHECK(l.size() == 1);
    CHECK(l.front() == &three);
    CHECK(deleted == 0);
  } // the graveyard frees 2, the list frees 3
  CHECK(deleted == 2);
  released.reset();
  CHECK(deleted == 3);
}
