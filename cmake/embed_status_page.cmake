# Run at build time (cmake -P) by the kal library's custom command: turns src/admin/status_page.html
# into a C++ source holding the page and the SHA-256 (base64) of its one inline <style> and one
# inline <script>, which the Content-Security-Policy names. Usage:
#   cmake -DIN=status_page.html -DOUT=status_page_data.cc -P embed_status_page.cmake
file(READ "${IN}" page)

# Base64 of the bytes a hex string spells (CSP hashes are base64, CMake gives hex).
function(hex_to_base64 hex out)
  set(alphabet "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
  string(LENGTH "${hex}" n)
  set(result "")
  set(i 0)
  while(i LESS n)
    math(EXPR left "${n} - ${i}")
    if(left GREATER_EQUAL 6)
      set(take 6)
    else()
      set(take ${left})
    endif()
    string(SUBSTRING "${hex}" ${i} ${take} chunk)
    # Pad the group to 3 bytes; the missing bytes become '=' below.
    set(padded "${chunk}")
    string(LENGTH "${padded}" plen)
    while(plen LESS 6)
      string(APPEND padded "0")
      string(LENGTH "${padded}" plen)
    endwhile()
    math(EXPR v "0x${padded}")
    math(EXPR chars "${take} / 2 + 1") # bytes + 1 base64 characters carry data
    foreach(k 0 1 2 3)
      if(k LESS chars)
        math(EXPR shift "18 - 6 * ${k}")
        math(EXPR idx "(${v} >> ${shift}) & 63")
        string(SUBSTRING "${alphabet}" ${idx} 1 c)
        string(APPEND result "${c}")
      else()
        string(APPEND result "=")
      endif()
    endforeach()
    math(EXPR i "${i} + 6")
  endwhile()
  set(${out} "${result}" PARENT_SCOPE)
endfunction()

# The text between <tag> and </tag> (exactly one of each), as the browser hashes it.
function(inline_of tag out)
  string(FIND "${page}" "<${tag}>" open)
  string(FIND "${page}" "</${tag}>" close)
  string(FIND "${page}" "<${tag}>" open_last REVERSE)
  if(open EQUAL -1 OR close EQUAL -1 OR NOT open EQUAL open_last)
    message(FATAL_ERROR "${IN}: needs exactly one <${tag}> ... </${tag}>")
  endif()
  string(LENGTH "<${tag}>" tl)
  math(EXPR start "${open} + ${tl}")
  math(EXPR len "${close} - ${start}")
  string(SUBSTRING "${page}" ${start} ${len} body)
  set(${out} "${body}" PARENT_SCOPE)
endfunction()

inline_of(style style)
inline_of(script script)
string(SHA256 style_hex "${style}")
string(SHA256 script_hex "${script}")
hex_to_base64(${style_hex} style_b64)
hex_to_base64(${script_hex} script_b64)

string(FIND "${page}" ")KALPAGE\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN}: contains the raw string delimiter )KALPAGE\"")
endif()
set(content "// Generated from src/admin/status_page.html by cmake/embed_status_page.cmake. Do not edit.
#include \"admin/status_page_data.h\"
namespace kal::status_page_data {
const char kTemplate[] = R\"KALPAGE(${page})KALPAGE\";
const char kStyleHash[] = \"sha256-${style_b64}\";
const char kScriptHash[] = \"sha256-${script_b64}\";
} // namespace kal::status_page_data
")
# Rewritten only when it changes, so an unchanged page rebuilds nothing.
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL content)
  file(WRITE "${OUT}" "${content}")
endif()
