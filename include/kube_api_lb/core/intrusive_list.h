#pragma once
// Intrusive doubly linked lists with private links: an object joins a list through a ListHook base
// (one per list it can be on, told apart by a tag type), so linking and unlinking never allocate
// and an object removes itself in O(1).
//
//   IntrusiveList<T, Tag>  does not own: a queue of objects owned elsewhere.
//   OwnedList<T, Tag>      owns its objects: adopt() takes a unique_ptr, release() gives it back
//                          (to hand to a deferred deleter), the destructor deletes what is left.
//
// An object must be unlinked before it is destroyed; OwnedList does that itself. Single-threaded.
#include <cstddef>
#include <memory>
#include <utility>

namespace kal {

template <class T, class Tag> class IntrusiveList;

template <class Tag = void> class ListHook {
public:
  ListHook() = default;
  ListHook(const ListHook &) = delete;
  ListHook &operator=(const ListHook &) = delete;
  // Whether the object is on a list of this tag now.
  bool linked() const { return linked_; }

private:
  template <class, class> friend class IntrusiveList;
  ListHook *prev_ = nullptr;
  ListHook *next_ = nullptr;
  bool linked_ = false;
};

template <class T, class Tag = void> class IntrusiveList {
  using Hook = ListHook<Tag>;

public:
  IntrusiveList() = default;
  IntrusiveList(const IntrusiveList &) = delete;
  IntrusiveList &operator=(const IntrusiveList &) = delete;
  ~IntrusiveList() { clear(); }

  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  T *front() const { return head_ ? of(head_) : nullptr; }

  // Appends `t`, which must not be on a list of this tag.
  void push_back(T &t) {
    Hook &h = t;
    h.prev_ = tail_;
    h.next_ = nullptr;
    (tail_ ? tail_->next_ : head_) = &h;
    tail_ = &h;
    h.linked_ = true;
    ++size_;
  }
  // Takes `t` off this list; nothing when it is not linked.
  void erase(T &t) {
    Hook &h = t;
    if (!h.linked_) {
      return;
    }
    (h.prev_ ? h.prev_->next_ : head_) = h.next_;
    (h.next_ ? h.next_->prev_ : tail_) = h.prev_;
    h.prev_ = h.next_ = nullptr;
    h.linked_ = false;
    --size_;
  }
  // Unlinks every object (owned elsewhere).
  void clear() {
    while (head_) {
      erase(*of(head_));
    }
  }
  // Calls `fn(T&)` on each object in order; `fn` may unlink the object it is given (and only it).
  template <class Fn> void for_each(Fn &&fn) {
    for (Hook *h = head_; h;) {
      Hook *next = h->next_;
      fn(*of(h));
      h = next;
    }
  }

private:
  static T *of(Hook *h) { return static_cast<T *>(h); }
  Hook *head_ = nullptr;
  Hook *tail_ = nullptr;
  size_t size_ = 0;
};

template <class T, class Tag = void> class OwnedList {
public:
  OwnedList() = default;
  OwnedList(const OwnedList &) = delete;
  OwnedList &operator=(const OwnedList &) = delete;
  ~OwnedList() {
    while (T *t = list_.front()) {
      release(*t); // the unique_ptr deletes it
    }
  }

  bool empty() const { return list_.empty(); }
  size_t size() const { return list_.size(); }
  T *front() const { return list_.front(); }
  bool contains(const T &t) const { return static_cast<const ListHook<Tag> &>(t).linked(); }

  // Takes ownership of `t` and links it; returns the object.
  T &adopt(std::unique_ptr<T> t) {
    T &ref = *t.release();
    list_.push_back(ref);
    return ref;
  }
  // Unlinks `t` and hands ownership back (null if `t` is not on the list).
  std::unique_ptr<T> release(T &t) {
    if (!contains(t)) {
      return nullptr;
    }
    list_.erase(t);
    return std::unique_ptr<T>(&t);
  }
  // As IntrusiveList::for_each; `fn` may release the object it is given.
  template <class Fn> void for_each(Fn &&fn) { list_.for_each(std::forward<Fn>(fn)); }

private:
  IntrusiveList<T, Tag> list_;
};

} // namespace kal
