"""Offline means offline: a whole session under strace makes no name lookup, no connect off this machine, and
writes no file outside the data directory; what engram writes there is private (RELIABILITY.md, "offline").

The session runs in a fresh process with HOME an empty directory and ENGRAM_HOME a data directory that does not
exist yet, so the embedding model is exported too. strace follows every thread and child. What counts:
- a name lookup: a connect or send to port 53 at any address, loopback included (a local resolver such as
  systemd-resolved on 127.0.0.53 forwards it); opening /etc/hosts or /etc/resolv.conf, which glibc reads only
  to resolve a host name (127.0.0.1 needs neither); a connect to systemd-resolved's socket. A connect to nscd's
  socket alone is not counted: glibc asks nscd for user names too, and without nscd a host lookup goes on to
  /etc/hosts and DNS, which are counted;
- a connect (or a send with an address) to any IPv4 or IPv6 address off loopback, whether it succeeds or not;
- a file or directory successfully created, opened for writing, renamed, linked, truncated or removed outside
  the data directory, the report directory the session names and the TMPDIR the test owns; TMPDIR, HOME and the
  working directory must be empty afterwards. /dev/null and Python's bytecode caches (__pycache__) are not
  engram's. Reads are not counted: reading system files and installed packages is fine.
Python audit hooks would not do: onnxruntime resolves names and writes files from native code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engram.testing import FakeOpenAI, dspy_reply

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (apt-get install strace)"),
]

IDLE_SECONDS = 20  # telemetry uploads and their name lookups come late, after the work is done

SESSION = textwrap.dedent("""
    import os, sys, time
    os.umask(0o022)
    from engram import Memory
    from engram.agent import Agent
    from engram.cli import main
    from engram.config import Settings

    base_url, locomo, out, idle = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    with Memory() as memory:  # the data directory comes from ENGRAM_HOME, the model is exported on first use
        memory.add("my cat is called Miso", user_id="u", infer=False)
        assert memory.search("what is my cat called?", user_id="u")["results"]
        added = memory.add("I live in Lyon and I like green tea", user_id="u")  # the offline rules pipeline
        assert added["results"], added
    with Memory(Settings.load(store="qdrant")) as memory:  # local Qdrant in <data>/qdrant
        memory.add("my cat is called Miso", user_id="u", infer=False)
        assert memory.search("what is my cat called?", user_id="u")["results"]
    with Memory(llm_model="openai/fake-model", llm_api_base=base_url, llm_api_key="k", llm_retries=0) as memory, \\
            Agent(memory) as agent:
        reply = agent.reply("alice", "My dog is called Rex", session_id="s1")
        saved = reply.saved.result(timeout=60)["results"]
        assert [r["memory"] for r in saved] == ["User has a dog named Rex"], saved
    sys.argv = ["engram", "eval", "locomo", locomo, "--out", out]
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
    print("session done", flush=True)
    time.sleep(idle)
""")

TRACED = ("connect,sendto,sendmsg,open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,"
          "link,linkat,symlink,symlinkat,truncate,unlink,unlinkat,rmdir")


def tiny_locomo(path: Path) -> Path:
    turn = lambda i, who, text: {"speaker": who, "dia_id": i, "text": text}  # noqa: E731
    conversation = {
        "speaker_a": "Ann", "speaker_b": "Ben",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [turn("D1:1", "Ann", "I adopted a puppy called Rex last week."),
                      turn("D1:2", "Ben", "I started learning the violin this spring.")],
    }
    qa = [{"question": "What is the name of Ann's puppy?", "answer": "Rex", "evidence": ["D1:1"], "category": 4}]
    path.write_text(json.dumps([{"sample_id": "conv-t", "conversation": conversation, "qa": qa}]), encoding="utf-8")
    return path


def agent_turn(response: str, fact: str) -> list[str]:
    """The LLM answers of one agent turn that saves: ReAct `finish`, the reply, then the extracted fact."""
    return [dspy_reply(next_thought="done", next_tool_name="finish", next_tool_args={}),
            dspy_reply(reasoning="answering", response=response, save_memory=True),
            dspy_reply(facts=[{"text": fact, "category": "personal"}])]


def test_a_whole_session_stays_on_this_machine_and_in_the_data_directory(tmp_path: Path,
                                                                         fake_openai: FakeOpenAI) -> None:
    dirs = {name: tmp_path / name for name in ("home", "data", "tmp", "out", "cwd", "trace")}
    for name, path in dirs.items():
        if name != "data":  # engram creates its data directory
            path.mkdir()
    fake_openai.script_chat(*agent_turn("What a nice name!", "User has a dog named Rex"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(dirs["home"]), "TMPDIR": str(dirs["tmp"]),
           "ENGRAM_HOME": str(dirs["data"]), "LANG": "C.UTF-8"}
    if "PYTHONPATH" in os.environ:  # the checkout under test, when it is not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    command = ["strace", "-f", "-ff", "-qq", "-yy", "-s", "300", "-e", f"trace={TRACED}", "-o",
               str(dirs["trace"] / "t"), sys.executable, "-c", SESSION, fake_openai.base_url,
               str(tiny_locomo(tmp_path / "locomo.json")), str(dirs["out"]), str(IDLE_SECONDS)]
    run = subprocess.run(command, env=env, cwd=dirs["cwd"], capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0 and "session done" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]

    trace = read_trace(dirs["trace"], allowed=[dirs["data"], dirs["out"], dirs["tmp"]], cwd=dirs["cwd"])
    trace.left = [str(p) for name in ("home", "tmp", "cwd") for p in sorted(dirs[name].rglob("*"))]
    found = {kind: lines[:20] for kind, lines in vars(trace).items() if lines}
    if found:
        pytest.fail("the session did not stay offline and in its data directory:\n" + json.dumps(found, indent=1))
    assert not_private(dirs["data"]) == []


def not_private(data: Path) -> list[str]:
    """What engram wrote in the data directory that is not 0700 (directories) or 0600 (files). Qdrant's and
    matplotlib's own files are private through their 0700 directory."""
    wrong = []
    for path in [data, *data.rglob("*")]:
        parts = path.relative_to(data).parts
        if len(parts) > 1 and parts[0] in ("qdrant", "matplotlib"):
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode != (0o700 if path.is_dir() else 0o600):
            wrong.append(f"{oct(mode)} {path}")
    return wrong


# -- reading strace's output ---------------------------------------------------------------------------------------

@dataclass
class Trace:
    lookups: list[str] = field(default_factory=list)
    connects: list[str] = field(default_factory=list)  # off loopback
    writes: list[str] = field(default_factory=list)  # outside the allowed directories
    left: list[str] = field(default_factory=list)  # files left in HOME, TMPDIR or the working directory


_CALL = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+|\?)(?P<rest>.*)$")
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
_IPV4 = re.compile(r'sin_addr=inet_addr\("([\d.]+)"\)')
_IPV6 = re.compile(r'inet_pton\(AF_INET6, "([^"]+)"')
_UNIX = re.compile(r'sun_path=@?"([^"]*)"')
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_FD_PATH = re.compile(r"^(?:AT_FDCWD|\d+)<(.*)>$")  # a directory fd and its path, as -y prints it
_RESOLVER_FILES = ('"/etc/hosts"', '"/etc/resolv.conf"')
_RESOLVER_SOCKET = "/run/systemd/resolve/"
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")


def read_trace(directory: Path, allowed: list[Path], cwd: Path) -> Trace:
    trace = Trace()
    for file in sorted(directory.iterdir()):  # one file per thread (-ff)
        for line in _calls(file.read_text(errors="replace")):
            match = _CALL.match(line)
            if match:
                _classify(match, trace, allowed, cwd)
    return trace


def _calls(text: str) -> list[str]:
    """One line per system call: a call split into `<unfinished ...>` and `<... name resumed>` is joined."""
    calls: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.endswith("<unfinished ...>"):
            pending = line[: -len("<unfinished ...>")]
        elif line.startswith("<..."):
            calls.append(pending + line.split("resumed>", 1)[-1])
            pending = ""
        else:
            calls.append(line)
    return calls


def _classify(call: re.Match[str], trace: Trace, allowed: list[Path], cwd: Path) -> None:
    name, args, ret = call["name"], call["args"], call["ret"]
    if name in ("connect", "sendto", "sendmsg"):
        port, unix = _PORT.search(args), _UNIX.search(args)
        address = _IPV4.search(args) or _IPV6.search(args)
        if (port and port[1] == "53") or (unix and unix[1].startswith(_RESOLVER_SOCKET)):
            trace.lookups.append(call.string)
        elif address and not _loopback(address[1]):
            trace.connects.append(call.string)
        return
    if name in ("open", "openat") and any(f in args for f in _RESOLVER_FILES):
        trace.lookups.append(call.string)
    if ret == "?" or int(ret) < 0:
        return  # a write that failed wrote nothing
    for path in _written_paths(name, args, call["rest"], cwd):
        if not _harmless(path) and not any(path == a or a in path.parents for a in allowed):
            trace.writes.append(f"{name} {path}")


def _written_paths(name: str, args: str, rest: str, cwd: Path) -> list[Path]:
    strings = _STRING.findall(args)
    if name in ("open", "openat", "creat"):
        if name != "creat" and not any(flag in args for flag in _WRITE_FLAGS):
            return []
        opened = re.match(r"<(.*)>", rest.strip())  # the opened file's absolute path, printed by -y
        return [Path(opened[1])] if opened else [_resolve(args.split(", ", maxsplit=1)[0], strings[0], cwd)]
    if name.endswith("at") or name == "renameat2":  # (dirfd, path) pairs
        fds = [part for part in args.split(", ") if _FD_PATH.match(part)] or [""] * len(strings)
        pairs = [_resolve(fd, path, cwd) for fd, path in zip(fds, strings[-len(fds):], strict=False)]
        return pairs[-1:] if name in ("linkat", "symlinkat") else pairs  # a link's target is only read
    return [_resolve("", path, cwd) for path in (strings[-1:] if name in ("link", "symlink") else strings)]


def _resolve(fd: str, path: str, cwd: Path) -> Path:
    if path.startswith("/"):
        return Path(path)
    base = _FD_PATH.match(fd)
    return Path(base[1] if base else cwd) / path


def _harmless(path: Path) -> bool:
    return str(path) in ("/dev/null", "/dev/tty") or "__pycache__" in path.parts


def _loopback(address: str) -> bool:
    return address.startswith(("127.", "::ffff:127.")) or address == "::1"
