// A doubly-linked list threaded through its elements' own fields: no memory
// of its own beyond the head pointer, O(1) insertion at the front and O(1)
// removal of any element. Not thread-safe: the owner of the list (or the
// holder of the lock guarding it) is its only user.
//
//   struct Run { Run* prev; Run* next; ... };
//   IntrusiveList<Run, &Run::prev, &Run::next> partial;
//   partial.PushFront(r);  partial.Remove(r);
//   for (Run* r = partial.front(); r != nullptr; r = r->next) ...
//
// An element is on at most one list through a given pair of fields; its
// links are null while it is on none (Remove clears them). The list does not
// know which list an element is on: the caller keeps that (a state field),
// and removes the element from the list it is on.
#ifndef STRATA_THREADING_INTRUSIVE_LIST_H_
#define STRATA_THREADING_INTRUSIVE_LIST_H_

namespace strata::threading {

template <typename T, T* T::*Prev, T* T::*Next>
class IntrusiveList {
 public:
  constexpr IntrusiveList() = default;
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  T* front() const { return head_; }
  bool empty() const { return head_ == nullptr; }

  // REQUIRES: t is on no list.
  void PushFront(T* t) {
    t->*Prev = nullptr;
    t->*Next = head_;
    if (head_ != nullptr) head_->*Prev = t;
    head_ = t;
  }

  // REQUIRES: t is on this list. Clears t's links.
  void Remove(T* t) {
    T* prev = t->*Prev;
    T* next = t->*Next;
    if (prev != nullptr) {
      prev->*Next = next;
    } else {
      head_ = next;
    }
    if (next != nullptr) next->*Prev = prev;
    t->*Prev = nullptr;
    t->*Next = nullptr;
  }

  // Removes and returns the first element, or null when empty.
  T* PopFront() {
    T* t = head_;
    if (t != nullptr) Remove(t);
    return t;
  }

 private:
  T* head_ = nullptr;
};

}  // namespace strata::threading

#endif  // STRATA_THREADING_INTRUSIVE_LIST_H_
