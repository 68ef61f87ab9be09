#pragma once
// The syntax of nginx.conf, apart from what its directives mean (nginx_conf.cc): the tokenizer and
// the tree of directives and blocks it builds (nginx_syntax.cc also holds parse_nginx_time, the
// syntax of nginx's time values, declared in nginx_conf.h). Private to the nginx.conf reader;
// every position is the one a reader error names.
#include "config/reader_common.h"

#include <string>
#include <string_view>
#include <vector>

namespace kal::nginx {

struct Word {
  std::string text;
  ReaderPos pos;
  bool quoted = false;
};

struct Directive {
  std::string name;
  ReaderPos pos;
  std::vector<Word> args;
  bool is_block = false;
  std::vector<Directive> children;
};

// The directives of `text`, blocks holding their children. Throws ReaderFailure (see
// reader_common.h) naming the position of an unterminated string or block, a stray "}" or ";",
// a directive without its ";", or blocks nested deeper than 32 levels.
std::vector<Directive> parse_directives(std::string_view text);

} // namespace kal::nginx
