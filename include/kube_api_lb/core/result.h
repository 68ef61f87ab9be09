#pragma once
// Result<T>: a value or a human-readable error, for code paths that must not throw.
#include <optional>
#include <string>
#include <utility>

namespace kal {

struct Err {
  std::string message;
};

template <class T> class Result {
public:
  Result(T value) : value_(std::move(value)) {}
  Result(Err err) : error_(std::move(err.message)) {}
  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  T &value() { return *value_; }
  const T &value() const { return *value_; }
  T &operator*() { return *value_; }
  const T &operator*() const { return *value_; }
  T *operator->() { return &*value_; }
  const T *operator->() const { return &*value_; }
  const std::string &error() const { return error_; }

private:
  std::optional<T> value_;
  std::string error_;
};

} // namespace kal
