"""Two processes on one database file: writes of one are seen by the other's cached search."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from engram import Memory

WRITER = textwrap.dedent("""
    import sys
    from engram import Memory
    with Memory(home=sys.argv[1]) as m:
        m.add("the spare key is under the blue flowerpot", user_id="u", infer=False)
        old = m.search("cat", user_id="u", limit=1)["results"][0]["id"]
        m.delete(old)
""")


def test_a_second_process_writes_and_the_cache_follows(memory: Memory) -> None:
    memory.add("my cat is called Miso", user_id="u", infer=False)
    found = memory.search("where is the key?", user_id="u")["results"]
    assert [r["memory"] for r in found] == ["my cat is called Miso"]
    subprocess.run([sys.executable, "-c", WRITER, str(memory.settings.home)], check=True, timeout=120)
    found = memory.search("where is the key?", user_id="u")["results"]
    assert [r["memory"] for r in found] == ["the spare key is under the blue flowerpot"]
