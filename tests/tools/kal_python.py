"""Which Python runs the test kit's tools: Debian's python3-* packages (python3-h2 for the HTTP/2
stand-in) install into /usr/bin/python3's path only, and the first python3 on PATH may be another
interpreter (pyenv, a virtualenv) that lacks them.

    kal_python.ensure("h2")       # at the top of a script: re-executes it with /usr/bin/python3
                                  # if this interpreter lacks h2
    kal_python.interpreter("h2")  # the interpreter a caller should start a tool with
"""
import importlib.util
import os
import sys

SYSTEM_PYTHON = "/usr/bin/python3"
_MARK = "KAL_PYTHON_REEXEC"


def has(*modules, python=None):
    """True if `python` (default: this interpreter) can import every module in `modules`."""
    if python is None or os.path.realpath(python) == os.path.realpath(sys.executable):
        return all(importlib.util.find_spec(m) is not None for m in modules)
    import subprocess
    code = "import importlib.util,sys; sys.exit(0 if all(importlib.util.find_spec(m) " \
           f"for m in {list(modules)!r}) else 1)"
    try:
        return subprocess.run([python, "-c", code], timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_chosen = {}


def interpreter(*modules):
    """This interpreter if it has `modules`, else /usr/bin/python3 if that has them, else this one
    (the tool then says what is missing). Cached per module set."""
    key = tuple(sorted(modules))
    if key not in _chosen:
        pick = sys.executable
        if not has(*modules) and os.path.exists(SYSTEM_PYTHON) and has(*modules,
                                                                        python=SYSTEM_PYTHON):
            pick = SYSTEM_PYTHON
        _chosen[key] = pick
    return _chosen[key]


def ensure(*modules):
    """Returns if this interpreter has `modules`. Otherwise re-executes the running script with
    /usr/bin/python3 (same PID, argv and environment, so a caller's PID bookkeeping and
    PR_SET_PDEATHSIG still hold), once; returns False if that is not possible or was already
    tried."""
    if has(*modules):
        os.environ.pop(_MARK, None)  # children may need their own re-exec
        return True
    if os.environ.get(_MARK) == "1" or not os.path.exists(SYSTEM_PYTHON) or \
            os.path.realpath(SYSTEM_PYTHON) == os.path.realpath(sys.executable):
        return False
    os.environ[_MARK] = "1"
    sys.stderr.flush()
    sys.stdout.flush()
    os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, *sys.argv])
    return False  # not reached
