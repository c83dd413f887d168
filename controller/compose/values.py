"""Compose's value syntaxes, parsed as its reference implementation parses them: Go durations
(``1m30s``, ``500ms``), memory sizes (``1.5G``, ``512m``), short port specs
(``127.0.0.1:8080:80/udp``) and command strings split like ``go-shellwords``.

Pure functions; each raises ``ValueError`` with a message fit for a located problem.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_RAM = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_RAM_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}

MAX_PORT_RANGE = 256


def go_duration(value: object) -> float:
    """Seconds of a Go duration (``1m30s``, ``500ms``, ``1.5h``): text, as Compose wants it."""
    if not isinstance(value, str):
        raise ValueError("must be a duration such as 30s, 1m30s or 500ms (a string)")
    text = value.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        match = _GO_DURATION_PART.match(text, pos)
        if match is None:
            break
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration; use e.g. 30s, 1m30s or 500ms")
    return total


def ram_bytes(value: object) -> int:
    """Bytes of a compose memory size (``1.5G``, ``512m``, ``1gb``; binary multiples, as
    Docker's ``RAMInBytes``); a bare integer is bytes."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a size such as 512m or 1.5G")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return int(value)
    match = _RAM.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a size; use e.g. 512m, 1g or 1.5G")
    return int(float(match.group(1)) * _RAM_FACTORS[(match.group(2) or "").lower()])


@dataclass(frozen=True)
class PortSpec:
    """One container port, published on ``host_port`` (``host_ip``) when given."""

    container: int
    protocol: str = "tcp"
    host_port: int | None = None
    host_ip: str | None = None


def _port_range(text: str, what: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a port number") from None
    if not (1 <= low <= 65535 and 1 <= high <= 65535) or high < low:
        raise ValueError(f"{what} {text!r} is not a port (1..65535) or an ascending range")
    if high - low >= MAX_PORT_RANGE:
        raise ValueError(f"{what} range {text!r} is longer than {MAX_PORT_RANGE} ports")
    return low, high


def _split_host_ip(text: str) -> tuple[str | None, str]:
    """``[::1]:80:80`` / ``127.0.0.1:80:80`` → (ip, rest); no IP → (None, text)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"{text!r}: an IPv6 host address is written [addr]:host:container")
        return text[1:end], text[end + 2 :]
    parts = text.split(":")
    if len(parts) == 3:
        return parts[0], ":".join(parts[1:])
    if len(parts) > 3:
        ip, _, rest = text.rpartition(":")
        ip, _, host = ip.rpartition(":")
        return ip, f"{host}:{rest}"
    return None, text


def _check_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise ValueError(f"host IP {ip!r} is not an IP address") from None


def expand_ports(container: str, host: str | None, ip: str | None, protocol: str) -> list[PortSpec]:
    """Expand one (possibly ranged) mapping into single ports."""
    if protocol not in ("tcp", "udp"):
        raise ValueError(f"protocol {protocol!r} is not supported (tcp or udp)")
    low, high = _port_range(container, "container port")
    host_ip = _check_ip(ip) if ip else None
    if not host:
        if host_ip is not None:
            raise ValueError("a host IP needs a host port (e.g. 127.0.0.1:8080:80)")
        return [PortSpec(p, protocol) for p in range(low, high + 1)]
    hlow, hhigh = _port_range(host, "host port")
    if hhigh - hlow != high - low:
        raise ValueError(
            f"host ports {host!r} and container ports {container!r} differ in length; "
            "trueup publishes a range only onto a range of the same length"
        )
    return [PortSpec(p, protocol, hlow + (p - low), host_ip) for p in range(low, high + 1)]


def short_ports(value: str | int) -> list[PortSpec]:
    """The ports of a short-syntax entry: ``80``, ``8080:80``, ``127.0.0.1:8080:80/udp``,
    ``[::1]:8080:80``, ``8000-8001:8000-8001``."""
    text = str(value).strip()
    body, _, protocol = text.partition("/")
    ip, rest = _split_host_ip(body)
    host, sep, container = rest.rpartition(":")
    if not container:
        raise ValueError(f"{text!r} names no container port")
    if sep and not host and ip is None:
        raise ValueError(f"{text!r} has an empty host port")
    return expand_ports(container, host or None, ip, protocol.lower() or "tcp")


_SHELL_SPACE = " \t\r\n"
_SHELL_OPERATORS = ";&|<>"


def shell_words(line: str) -> list[str]:
    """Split a command string as Compose does (``go-shellwords``, no env, no backticks).

    Where go-shellwords silently stops at an unquoted ``;``, ``&``, ``|``, ``<`` or ``>`` and
    drops the rest of the line, this refuses: the command would not be what it reads."""
    args: list[str] = []
    buf = ""
    got = False
    escaped = single = double = False
    for ch in line:
        if escaped:
            buf += ch
            escaped, got = False, True
            continue
        if ch == "\\":
            if single:
                buf += ch
            else:
                escaped = True
            continue
        if ch in _SHELL_SPACE:
            if single or double:
                buf += ch
            elif got:
                args.append(buf)
                buf, got = "", False
            continue
        if ch == '"' and not single:
            double = not double
            got = True
            continue
        if ch == "'" and not double:
            single = not single
            got = True
            continue
        if ch in _SHELL_OPERATORS and not (single or double):
            raise ValueError(
                f"unquoted {ch!r}: Compose would silently drop the rest of the command; "
                'quote it, or use the list form (["sh", "-c", "..."])'
            )
        buf += ch
        got = True
    if escaped or single or double:
        raise ValueError("unterminated quote or trailing backslash in the command string")
    if got:
        args.append(buf)
    return args
