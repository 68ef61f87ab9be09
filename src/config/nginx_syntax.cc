#include "config/nginx_syntax.h"

#include "kube_api_lb/config/nginx_conf.h"

#include <cctype>
#include <charconv>

namespace kal {
namespace nginx {
namespace {

using Pos = ReaderPos;

[[noreturn]] void fail(Pos pos, std::string message) { reader_fail(pos, std::move(message)); }

// A tokenizer following nginx's ngx_conf_read_token: words separated by whitespace, ";" ends a
// directive, "{" opens its block, "}" closes one, "#" at the start of a word comments out the rest
// of the line, quotes group and backslash escapes.
class Lexer {
public:
  explicit Lexer(std::string_view text) : s_(text) {}

  enum class Kind { Word, Semicolon, Open, Close, End };
  struct Token {
    Kind kind;
    Word word;
  };

  Token next() {
    skip_space_and_comments();
    Pos at = pos_;
    if (i_ >= s_.size()) {
      return Token{Kind::End, Word{"", at}};
    }
    char c = s_[i_];
    if (c == ';' || c == '{' || c == '}') {
      advance();
      return Token{c == ';'   ? Kind::Semicolon
                   : c == '{' ? Kind::Open
                              : Kind::Close,
                   Word{std::string(1, c), at}};
    }
    if (c == '"' || c == '\'') {
      return Token{Kind::Word, quoted(c, at)};
    }
    std::string text;
    while (i_ < s_.size()) {
      c = s_[i_];
      if (is_space(c) || c == ';' || c == '{' || c == '}') {
        break;
      }
      if (c == '\\' && i_ + 1 < s_.size()) {
        advance();
        c = s_[i_];
      }
      text += c;
      advance();
    }
    return Token{Kind::Word, Word{text, at}};
  }

private:
  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

  void advance() {
    if (s_[i_] == '\n') {
      ++pos_.line;
      pos_.col = 1;
    } else {
      ++pos_.col;
    }
    ++i_;
  }

  void skip_space_and_comments() {
    while (i_ < s_.size()) {
      if (is_space(s_[i_])) {
        advance();
      } else if (s_[i_] == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') {
          advance();
        }
      } else {
        break;
      }
    }
  }

  Word quoted(char q, Pos at) {
    advance();
    std::string text;
    while (true) {
      if (i_ >= s_.size()) {
        fail(at, "unterminated string: the quote opened here is never closed");
      }
      char c = s_[i_];
      if (c == q) {
        advance();
        break;
      }
      if (c == '\\' && i_ + 1 < s_.size()) {
        char e = s_[i_ + 1];
        if (e == q || e == '\\') {
          advance();
          c = e;
        } else if (e == 'n' || e == 't' || e == 'r') {
          advance();
          c = e == 'n' ? '\n' : e == 't' ? '\t' : '\r';
        }
      }
      text += c;
      advance();
    }
    // nginx wants a separator after a closing quote.
    if (i_ < s_.size() && !is_space(s_[i_]) && s_[i_] != ';' && s_[i_] != '{' && s_[i_] != '}') {
      fail(pos_, "unexpected " + quote(std::string(1, s_[i_])) + " after a quoted string");
    }
    return Word{text, at, true};
  }

  std::string_view s_;
  size_t i_ = 0;
  Pos pos_;
};

// Blocks deeper than this are refused: parse_block recurses once per level (and so does freeing
// the tree), so an unbounded depth would let a 4 MiB file of "a{a{a{..." overflow the stack.
// nginx configurations need 3 or 4 levels (stream > upstream, http > server > location).
constexpr int kMaxBlockDepth = 32;

// Reads directives up to the "}" closing `parent` (or the end of the file at the top level, where
// `parent` is null and `depth` 0).
std::vector<Directive> parse_block(Lexer &lex, const Directive *parent, int depth) {
  std::vector<Directive> out;
  while (true) {
    auto t = lex.next();
    switch (t.kind) {
    case Lexer::Kind::End:
      if (parent) {
        fail(parent->pos,
             "block " + quote(parent->name) + " opened here is never closed (missing \"}\")");
      }
      return out;
    case Lexer::Kind::Close:
      if (!parent) {
        fail(t.word.pos, "unexpected \"}\" with no block to close");
      }
      return out;
    case Lexer::Kind::Semicolon:
    case Lexer::Kind::Open:
      fail(t.word.pos, "unexpected " + quote(t.word.text) + " where a directive name was expected");
    case Lexer::Kind::Word:
      break;
    }
    Directive d;
    d.name = t.word.text;
    d.pos = t.word.pos;
    while (true) {
      auto a = lex.next();
      if (a.kind == Lexer::Kind::Word) {
        d.args.push_back(a.word);
      } else if (a.kind == Lexer::Kind::Semicolon) {
        break;
      } else if (a.kind == Lexer::Kind::Open) {
        if (depth == kMaxBlockDepth) {
          fail(d.pos, "block " + quote(d.name) + " is nested more than " +
                          std::to_string(kMaxBlockDepth) +
                          " levels deep (nginx configurations need 3 or 4)");
        }
        d.is_block = true;
        d.children = parse_block(lex, &d, depth + 1);
        break;
      } else if (a.kind == Lexer::Kind::Close) {
        fail(a.word.pos, "unexpected \"}\": directive " + quote(d.name) + " (line " +
                             std::to_string(d.pos.line) + ") is missing its \";\"");
      } else {
        fail(d.pos, "unexpected end of file: directive " + quote(d.name) + " is missing its \";\"");
      }
    }
    out.push_back(std::move(d));
  }
}

} // namespace

std::vector<Directive> parse_directives(std::string_view text) {
  Lexer lex(text);
  return parse_block(lex, nullptr, 0);
}

} // namespace nginx

Result<Millis> parse_nginx_time(std::string_view text) {
  const std::string quoted = quote(text);
  std::string_view s = text;
  if (s.empty()) {
    return Err{"empty time value"};
  }
  int64_t total_ms = 0;
  bool any = false;
  while (!s.empty()) {
    if (s.front() == ' ') {
      s.remove_prefix(1);
      continue;
    }
    int64_t n = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec == std::errc::result_out_of_range || n > 100000000) {
      return Err{"time " + quoted + " is too large"};
    }
    if (ec != std::errc() || n < 0) {
      return Err{"time " + quoted + " is not a time (expected e.g. 1s, 500ms, 10m)"};
    }
    s.remove_prefix(ptr - s.data());
    size_t u = 0;
    while (u < s.size() && std::isalpha(static_cast<unsigned char>(s[u]))) {
      ++u;
    }
    std::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    int64_t per = 0;
    if (unit == "ms") {
      per = 1;
    } else if (unit.empty() || unit == "s") {
      per = 1000;
    } else if (unit == "m") {
      per = 60 * 1000;
    } else if (unit == "h") {
      per = 3600 * 1000;
    } else if (unit == "d") {
      per = 86400 * 1000;
    } else if (unit == "w") {
      per = 7 * int64_t{86400} * 1000;
    } else {
      return Err{"time " + quoted + " has unknown unit " + quote(unit) +
                 " (nginx units: ms, s, m, h, d, w)"};
    }
    total_ms += n * per;
    if (total_ms > int64_t{8760} * 3600 * 1000) {
      return Err{"time " + quoted + " is too large"};
    }
    any = true;
  }
  if (!any) {
    return Err{"time " + quoted + " is not a time (expected e.g. 1s, 500ms, 10m)"};
  }
  return Millis{total_ms};
}

} // namespace kal
