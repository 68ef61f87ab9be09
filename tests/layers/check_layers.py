#!/usr/bin/env python3
"""The layering test: every #include under src/ and include/ must follow the layer table of
docs/architecture.md (the one between the `layers:begin` and `layers:end` markers).

    check_layers.py SOURCE_DIR            check the tree; exit 1 naming every arrow that breaks it
    check_layers.py SOURCE_DIR --self-test  also prove the checker fails on an upward include

Rules:
  * a file belongs to the room (folder) it is in: src/<room>/... or include/kube_api_lb/<room>/...;
    src/main.cc is the room `main`; include/kube_api_lb/version.h(.in) is the room `version`;
  * "kube_api_lb/<room>/x.h" and "<room>/x.h" both name room <room>;
  * a room may include itself, `version`, and the rooms its row lists; nothing else;
  * a room may include only the libraries its row lists (<uv.h>, <openssl/...>, ...); the C and
    C++ standard headers and POSIX headers are always allowed;
  * a public header (include/) never includes a private one (a header found only under src/);
  * main.cc includes public headers only;
  * unit tests mirror src/: tests/unit/<room>_<file>[_<aspect>]_test.cc, where <room>/<file> is a
    source file (src/<room>/<file>.cc or .h, or include/kube_api_lb/<room>/<file>.h).
"""
import os
import re
import sys
import tempfile

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
# Library include prefixes, by the name the table uses.
LIBRARIES = {
    "libuv": ("uv.h", "uv/"),
    "openssl": ("openssl/",),
    "nghttp2": ("nghttp2/",),
    "yaml-cpp": ("yaml-cpp/",),
    "nlohmann-json": ("nlohmann/",),
    "cli11": ("CLI/",),
}


def read_table(source_dir):
    path = os.path.join(source_dir, "docs", "architecture.md")
    text = open(path, encoding="utf-8").read()
    m = re.search(r"<!-- layers:begin -->(.*?)<!-- layers:end -->", text, re.S)
    if not m:
        sys.exit(f"{path}: no <!-- layers:begin --> ... <!-- layers:end --> table")
    rows = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`") or set(cells[0]) <= set("-: "):
            continue
        room = cells[0].strip("`")
        def names(cell):
            return {n.strip().strip("`") for n in cell.split(",") if n.strip() and n.strip() != "—"}
        rows[room] = {"level": int(cells[1]), "rooms": names(cells[2]), "libs": names(cells[3])}
    if not rows:
        sys.exit(f"{path}: the layer table has no rows")
    for room, r in rows.items():
        for dep in r["rooms"]:
            if dep not in rows:
                sys.exit(f"{path}: room {room} may include {dep}, which has no row")
            if rows[dep]["level"] >= r["level"]:
                sys.exit(f"{path}: room {room} (level {r['level']}) lists {dep} (level "
                         f"{rows[dep]['level']}): the table itself points upward")
        for lib in r["libs"]:
            if lib not in LIBRARIES:
                sys.exit(f"{path}: room {room} lists unknown library {lib}")
    return rows


def room_of_file(rel):
    parts = rel.split("/")
    if rel == "src/main.cc":
        return "main"
    if parts[0] == "src" and len(parts) >= 3:
        return parts[1]
    if parts[:2] == ["include", "kube_api_lb"]:
        if len(parts) == 3:
            return "version" if parts[2].startswith("version.h") else None
        return parts[2]
    return None


def room_of_include(name):
    parts = name.split("/")
    if parts[0] == "kube_api_lb":
        if len(parts) == 2:
            return "version" if parts[1] == "version.h" else None
        return parts[1]
    return parts[0] if len(parts) >= 2 else None


def library_of(name):
    for lib, prefixes in LIBRARIES.items():
        if any(name == p or name.startswith(p) for p in prefixes):
            return lib
    return None


def check(source_dir):
    rows = read_table(source_dir)
    public = set()
    for base, _, files in os.walk(os.path.join(source_dir, "include")):
        for f in files:
            public.add(os.path.relpath(os.path.join(base, f), os.path.join(source_dir, "include")))
    errors = []
    checked = 0
    for top in ("src", "include"):
        for base, _, files in os.walk(os.path.join(source_dir, top)):
            for f in sorted(files):
                if not re.search(r"\.(h|cc|h\.in)$", f):
                    continue
                rel = os.path.relpath(os.path.join(base, f), source_dir)
                room = room_of_file(rel)
                if room is None:
                    errors.append(f"{rel}: not in any room (put it under a room's folder)")
                    continue
                if room not in rows:
                    errors.append(f"{rel}: room {room} has no row in docs/architecture.md")
                    continue
                text = open(os.path.join(source_dir, rel), encoding="utf-8").read()
                for m in INCLUDE_RE.finditer(text):
                    kind, name = m.group(1), m.group(2)
                    line = text.count("\n", 0, m.start()) + 1
                    where = f"{rel}:{line}"
                    checked += 1
                    if kind == "<":
                        lib = library_of(name)
                        if lib and lib not in rows[room]["libs"]:
                            errors.append(f"{where}: room {room} includes <{name}> ({lib}), "
                                          f"which its row does not allow")
                        continue
                    if top == "include" and name not in public and not name.endswith("version.h"):
                        errors.append(f"{where}: public header includes private \"{name}\"")
                    if room == "main" and not name.startswith("kube_api_lb/"):
                        errors.append(f"{where}: main.cc includes private \"{name}\" "
                                      f"(only include/kube_api_lb/ is its surface)")
                    dep = room_of_include(name)
                    if dep is None:
                        continue  # a header beside the file, e.g. a test helper
                    if dep == room or dep == "version":
                        continue
                    if dep not in rows:
                        errors.append(f"{where}: includes \"{name}\" of unknown room {dep}")
                    elif dep not in rows[room]["rooms"]:
                        direction = "upward" if rows[dep]["level"] >= rows[room]["level"] else \
                            "not in its row"
                        errors.append(f"{where}: {room} -> {dep} (\"{name}\") runs {direction}: "
                                      f"{room} may include {', '.join(sorted(rows[room]['rooms'])) or 'no room'}")
    return errors, checked


def check_test_names(source_dir):
    """Every tests/unit/*_test.cc names the source it tests: <room>_<file>[_<aspect>]_test.cc."""
    units = set()
    for top, strip in (("src", 1), (os.path.join("include", "kube_api_lb"), 2)):
        for base, _, files in os.walk(os.path.join(source_dir, top)):
            for f in files:
                rel = os.path.relpath(os.path.join(base, f), source_dir).split(os.sep)[strip:]
                if len(rel) == 2 and re.search(r"\.(h|cc)$", f):
                    units.add(rel[0] + "_" + re.sub(r"\.(h|cc)$", "", rel[1]))
    errors = []
    unit_dir = os.path.join(source_dir, "tests", "unit")
    for f in sorted(os.listdir(unit_dir)) if os.path.isdir(unit_dir) else []:
        if not f.endswith("_test.cc"):
            continue
        stem = f[: -len("_test.cc")]
        if not any(stem == u or stem.startswith(u + "_") for u in units):
            errors.append(f"tests/unit/{f}: does not mirror a source file (name it "
                          f"<room>_<file>[_<aspect>]_test.cc after src/<room>/<file>)")
    return errors


def self_test(source_dir):
    """Copies the tree's headers and sources, adds an upward include to core, and expects a failure."""
    import shutil
    with tempfile.TemporaryDirectory() as tmp:
        for d in ("src", "include", "docs"):
            shutil.copytree(os.path.join(source_dir, d), os.path.join(tmp, d))
        victim = os.path.join(tmp, "src", "core", "picker.cc")
        with open(victim, "a", encoding="utf-8") as f:
            f.write('\n#include "proxy/worker.h"\n')
        errors, _ = check(tmp)
        if not any("core -> proxy" in e and "upward" in e for e in errors):
            print("layers: self-test FAILED: an upward include core -> proxy was not reported")
            return False
        print("layers: self-test: an added upward include is reported:")
        for e in errors:
            print("  " + e.replace(tmp + "/", ""))
    return True


def main():
    source_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    errors, checked = check(source_dir)
    errors += check_test_names(source_dir)
    for e in errors:
        print("layers: " + e)
    ok = not errors
    if "--self-test" in sys.argv or os.environ.get("KAL_LAYERS_SELF_TEST", "1") == "1":
        ok = self_test(source_dir) and ok
    print(f"layers: {checked} includes checked, {len(errors)} breaking the table")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
