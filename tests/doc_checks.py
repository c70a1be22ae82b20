"""Checks of doc blocks that are read rather than run: engram command lines, setup lines, Dockerfiles and
reverse-proxy configurations (the kinds are described in doc_blocks.py). Each raises AssertionError with what
is wrong."""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import typer
from doc_blocks import ROOT
from fastapi.testclient import TestClient
from packaging.specifiers import SpecifierSet

from engram import Settings
from engram.cli import app
from engram.cli.serve import is_loopback, serve
from engram.server.app import create_app


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def engram_parses(args: list[str]) -> None:
    """Parse an engram command line as the CLI would, without running it (a usage error when it would not)."""
    command: Any = typer.main.get_command(app)
    context = command.context_class(command, info_name="engram")
    while args and args[0] in getattr(command, "commands", {}):
        name, command, args = args[0], command.commands[args[0]], args[1:]
        if hasattr(command, "commands"):
            context = command.context_class(command, info_name=name, parent=context)
        else:
            command.make_context(name, args, parent=context).close()
            return
    raise AssertionError(f"no engram command in {args}")


def default_port() -> int:
    """The port `engram serve` listens on unless told otherwise."""
    return int(inspect.signature(serve).parameters["port"].default)


def option(words: list[str], name: str, default: str | None = None) -> str | None:
    """The value of `--name VALUE` (or `--name=VALUE`) in a command line."""
    for i, word in enumerate(words):
        if word == name and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return default


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))


PIP_FLAGS = {"-e", "--no-cache-dir"}
PIP_FLAGS_WITH_VALUE = {"--index-url"}


def check_pip_install(args: list[str]) -> None:
    """pip's flags are known ones, extras are engram's, pins are the Makefile's."""
    words = iter(args)
    for arg in words:
        extras = re.fullmatch(r"\.\[([\w,]+)\]", arg)
        if extras:
            known = set(pyproject()["project"]["optional-dependencies"])
            assert set(extras.group(1).split(",")) <= known, f"no extra {extras.group(1)} in pyproject.toml"
        elif "==" in arg:
            assert arg in (ROOT / "Makefile").read_text(), f"{arg} is not the Makefile's pin"
        elif arg in PIP_FLAGS_WITH_VALUE:
            assert re.fullmatch(r"https://\S+", next(words, "")), f"{arg} needs an https URL"
        else:
            assert arg in PIP_FLAGS, f"pip argument {arg} is not checked"


def check_setup_command(words: list[str]) -> None:
    program, args = Path(words[0]).name, words[1:]
    if program == "make":
        assert set(args) <= makefile_targets(), f"no such make target: {set(args) - makefile_targets()}"
    elif program.startswith("python") and args[0] == "-m":
        assert importlib.util.find_spec(args[1]) is not None, f"no module {args[1]}"
    elif program == "pip" and args[0] == "install":
        check_pip_install(args[1:])
    elif program == "engram":
        commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
        assert args[0] in commands, f"no engram command {args[0]}"
    else:
        raise AssertionError(f"setup command {words} is neither make, python -m, pip install nor engram")


def check_setup_line(line: str) -> None:
    """Each command of a line (`a && b`)."""
    words = shlex.split(line, comments=True)
    while words:
        end = words.index("&&") if "&&" in words else len(words)
        check_setup_command(words[:end])
        words = words[end + 1:]


def check_engram_env(env: dict[str, str], home: Path) -> None:
    """ENGRAM_* variables load as settings with the values given."""
    engram = {k: v for k, v in env.items() if k.startswith("ENGRAM_") and k != "ENGRAM_HOME"}
    settings = Settings.load(env={**engram, "ENGRAM_HOME": str(home)})
    for key, value in engram.items():
        assert str(getattr(settings, key.removeprefix("ENGRAM_").lower())) == value, key


# -- Dockerfile --------------------------------------------------------------------------------------------------

@dataclass
class Image:
    """What a Dockerfile makes: its environment, volumes, exposed ports and command."""

    env: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    exposed: list[int] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    workdir: PurePosixPath = field(default_factory=lambda: PurePosixPath("/"))


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments), continuation lines joined, comments left out."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in joined.splitlines()
            if line.strip()]


def check_dockerfile(text: str, context: Path) -> Image:
    """Check a Dockerfile built from this repository; `context` is a scratch directory that becomes the image's
    file system as far as COPY makes it (the wheel `pip install .` would build is built from it)."""
    image = Image()
    for name, args in instructions(text):
        if name == "FROM":
            python = re.fullmatch(r"python:(\d+\.\d+)[\w.-]*", args)
            assert python, f"FROM {args}: not an official python image"
            required = pyproject()["project"]["requires-python"]
            assert SpecifierSet(required).contains(python.group(1) + ".0"), f"{args}: engram requires {required}"
        elif name == "WORKDIR":
            image.workdir = image.workdir / args
        elif name == "COPY":
            _copy(shlex.split(args), image.workdir, context)
        elif name == "RUN":
            _run(args, image.workdir, context)
        elif name == "ENV":
            for word in shlex.split(args):
                assert "=" in word, f"ENV {args}: write ENV NAME=VALUE"
                key, value = word.split("=", 1)
                image.env[key] = value
        elif name == "VOLUME":
            image.volumes += json.loads(args) if args.startswith("[") else args.split()
        elif name == "EXPOSE":
            image.exposed += [int(port.removesuffix("/tcp")) for port in args.split()]
        elif name == "CMD":
            assert args.startswith("["), "CMD in exec form (a JSON list), so that SIGTERM reaches engram"
            image.command = json.loads(args)
        else:
            raise AssertionError(f"the Dockerfile instruction {name} is not checked")
    _check_image(image, context)
    return image


def _copy(words: list[str], workdir: PurePosixPath, context: Path) -> None:
    *sources, target = words
    assert sources and not any(s.startswith("--") for s in words), f"COPY {words}: flags are not checked"
    destination = context / str(workdir / target).lstrip("/")
    for source in sources:
        found = ROOT / source
        assert found.exists(), f"COPY {source}: no such file in the repository (the build context)"
        if found.is_dir():  # COPY copies a directory's contents
            shutil.copytree(found, destination, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            into = destination / found.name if target.endswith("/") or len(sources) > 1 else destination
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(found, into)


def _run(args: str, workdir: PurePosixPath, context: Path) -> None:
    for command in args.split("&&"):
        words = shlex.split(command)
        assert words[:2] == ["pip", "install"], f"RUN {command.strip()}: only pip install lines are checked"
        check_pip_install(words[2:])
        local = [w for w in words[2:] if w == "." or w.startswith(".[")]
        if local:
            _build_wheel(context / str(workdir).lstrip("/"), local[0])


def _build_wheel(source: Path, requirement: str) -> None:
    """`pip install .[extras]` there: the files copied so far must build engram, with those extras."""
    assert (source / "pyproject.toml").exists(), f"pip install {requirement}: no pyproject.toml copied there"
    out = source.parent / f"{source.name}-wheel"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(out), str(source)], capture_output=True, text=True, timeout=120, check=False)
    assert built.returncode == 0, f"the copied files do not build engram:\n{built.stderr[-3000:]}"
    with zipfile.ZipFile(next(out.glob("engram-*.whl"))) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        scripts = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "engram/server/app.py" in names, "the copied files make a wheel without engram's server"
    assert re.search(r"^engram = engram\.cli:main$", scripts, re.MULTILINE), "the wheel has no engram command"
    for extra in re.findall(r"\[([\w,]+)\]", requirement)[0].split(",") if "[" in requirement else []:
        assert f"Provides-Extra: {extra}" in metadata, f"the wheel has no extra {extra}"


def check_built_service(service: dict[str, Any], dockerfile: str, context: Path) -> Image:
    """A compose service built from the Dockerfile: the port it listens on published, its volumes mounted."""
    image = check_dockerfile(dockerfile, context)
    published = {int(str(port).rsplit(":", 1)[-1]) for port in service.get("ports", [])}
    assert set(image.exposed) <= published, f"the image listens on {image.exposed}, the service publishes {published}"
    mounted = {str(volume).split(":")[1] for volume in service.get("volumes", [])}
    assert set(image.volumes) <= mounted, f"the image's volumes {image.volumes} are not mounted"
    return image


def _check_image(image: Image, context: Path) -> None:
    check_engram_env(image.env, context)
    assert image.env.get("ENGRAM_HOME") in image.volumes, "the data directory (ENGRAM_HOME) is not a volume"
    assert image.command[:1] == ["engram"], f"CMD {image.command} does not run engram"
    engram_parses(image.command[1:])
    port = int(option(image.command, "--port") or default_port())
    assert port in image.exposed, f"engram listens on {port}, the image exposes {image.exposed}"


# -- reverse proxies ---------------------------------------------------------------------------------------------

def directives(lang: str, text: str) -> list[list[str]]:
    """The directives of a Caddyfile or an nginx configuration, each as its words; braces must balance and, in
    nginx, every directive end with `;`."""
    found: list[list[str]] = []
    words: list[str] = []
    depth = 0
    for token in re.findall(r"#[^\n]*|\n|[{};]|[^\s{};#]+", text):
        if token.startswith("#") or (token == "\n" and lang == "nginx"):
            continue
        if token in ("{", "}", ";", "\n"):
            assert not (token == "}" and words and lang == "nginx"), f"nginx: `{' '.join(words)}` needs a ;"
            if words:
                found.append(words)
            words = []
            depth += {"{": 1, "}": -1}.get(token, 0)
            assert depth >= 0, "a } closes nothing"
        else:
            words.append(token)
    assert depth == 0 and not words, f"{lang}: unbalanced braces or an unfinished directive {words}"
    return found


def upstreams(lang: str, found: list[list[str]]) -> list[str]:
    """host:port of each upstream the proxy forwards to."""
    name = {"caddy": "reverse_proxy", "nginx": "proxy_pass"}[lang]
    return [re.sub(r"^https?://", "", words[1]).rstrip("/") for words in found if words[0] == name]


def size(text: str) -> int:
    """nginx's size syntax: 512, 64k, 2m, 1g."""
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", text.lower()).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def check_upstream(address: str) -> None:
    host, _, port = address.rpartition(":")
    assert is_loopback(host), f"the proxy forwards to {host}: keep engram on loopback"
    assert int(port) == default_port(), f"the proxy forwards to port {port}, engram serve listens on {default_port()}"


def check_proxy(lang: str, text: str, settings: Settings) -> None:
    """It forwards to engram on loopback, lets bodies engram takes through, and engram keeps its request id."""
    found = directives(lang, text)
    addresses = upstreams(lang, found)
    assert addresses, "the proxy forwards nowhere"
    for address in addresses:
        check_upstream(address)
    for words in found:
        if words[0] == "client_max_body_size":  # smaller: the proxy's own 413 page instead of engram's JSON
            assert size(words[1]) >= settings.server_max_body, f"{words} is below server_max_body"
        if words[:3] == ["proxy_set_header", "X-Request-ID", "$request_id"]:  # nginx's: 32 hex digits
            with TestClient(create_app(settings), base_url="http://127.0.0.1") as http:
                given = uuid.uuid4().hex
                assert http.get("/health", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given
