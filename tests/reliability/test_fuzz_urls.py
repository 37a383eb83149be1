"""Property-based fuzzing of the URL guard, the normaliser and redirects: a verdict or a ledger row, never a crash.

Budgets come from the hypothesis profile (tests/conftest.py): 60 examples by default,
``--hypothesis-profile=slow`` for 1200.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
import zlib
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regionset.stages.download import url_guard
from regionset.stages.download.stage import DownloadConfig, DownloadStage, make_key
from regionset.stages.download.url_guard import UrlPolicy, address_refusal, check_url, normalize_url
from tests.conftest import make_jpeg
from tests.reliability.hostile import FORBIDDEN_HOST, ConnectionRecorder

_REAL_GETADDRINFO = socket.getaddrinfo
# What a name may resolve to in the fuzz: public, private, loopback, link-local, mapped, reserved.
_ANSWERS = ["93.184.216.34", "10.1.2.3", "127.0.0.1", "169.254.169.254", "::1", "2606:4700::1111",
            "::ffff:192.168.0.1", "240.0.0.1", "0.0.0.0", "fe80::1", "100.64.0.1"]


class FakeResolver:
    """``getaddrinfo`` without DNS: literals resolve to themselves, names to a fixed answer by hash (or fail)."""

    def __init__(self) -> None:
        self.returned: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        try:
            infos = _REAL_GETADDRINFO(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            h = zlib.crc32(str(host).encode("utf-8", "surrogatepass"))
            if h % 5 == 0:
                raise socket.gaierror(socket.EAI_NONAME, "fake resolver: no such name") from None
            addr = _ANSWERS[h % len(_ANSWERS)]
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            infos = [(fam, socket.SOCK_STREAM, 6, "", (addr, port or 0))]
        self.returned.extend(info[4][0] for info in infos)
        return infos


_SCHEMES = st.sampled_from(["http", "https", "HTTP", "hTtPs", "ftp", "file", "data", "gopher", "jar:http",
                            "javascript", "ws", "", "http:", "ht tp"])
_HOSTS = st.one_of(
    st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
    st.sampled_from(["localhost", "127.1", "0x7f.1", "017700000001", "2130706433", "[::ffff:127.0.0.1]",
                     "127.0.0.1.", "example.com", "ex ample.com", "bücher.de", "xn--bcher-kva.de", "[::1%25lo]",
                     "[fe80::1%eth0]", "%31%32%37.0.0.1", "a" * 300, "", "[", "]", "@", "0", "[::]"]),
    st.text(max_size=24),
)
_PORTS = st.one_of(st.just(""), st.integers(-5, 70000).map(lambda p: f":{p}"), st.text(max_size=5).map(":{}".format))
_URLS = st.one_of(
    st.text(max_size=80),
    st.builds(lambda s, u, h, p, path: f"{s}://{u}{h}{p}/{path}", _SCHEMES,
              st.sampled_from(["", "user@", "u:p@", "127.0.0.1@", "@", "a:b:c@", "10.0.0.1%40x@"]),
              _HOSTS, _PORTS, st.text(max_size=30)),
)
_POLICIES = st.builds(UrlPolicy, allow_loopback=st.booleans(), allow_private=st.booleans(),
                      max_url_length=st.sampled_from([64, 4096]),
                      deny=st.sampled_from([(), ("127.0.0.0/8",), ("93.184.216.0/24", "::/0")]))


@given(url=_URLS, policy=_POLICIES)
def test_guard_gives_a_verdict_and_never_lets_a_refused_address_through(url, policy):
    resolver = FakeResolver()
    with mock.patch.object(url_guard.socket, "getaddrinfo", resolver):
        reason = check_url(url, policy)
    assert reason is None or (isinstance(reason, str) and reason)
    if reason is None:
        assert urllib.parse.urlsplit(url).scheme.lower() in ("http", "https")
        assert resolver.returned, "accepted without resolving the host"
        for addr in resolver.returned:
            assert address_refusal(addr, policy) is None, (url, addr)
            ip = ipaddress.ip_address(addr.split("%")[0])
            if not (policy.allow_private or policy.allow_loopback):
                assert not ip.is_loopback and not ip.is_private, (url, addr)
        normalized = normalize_url(url)
        assert isinstance(normalized, str) and urllib.parse.urlsplit(normalized).scheme.lower() in ("http", "https")


@given(url=st.text(max_size=80))
def test_redirect_check_never_raises(url):
    with mock.patch.object(url_guard.socket, "getaddrinfo", FakeResolver()):
        reason = check_url(url, UrlPolicy(allow_loopback=True), unresolvable_ok=True)
    assert reason is None or isinstance(reason, str)


@pytest.fixture(scope="module")
def fuzz_stage():
    """A download stage that may reach only 127.0.0.1 (every other IPv4 network and all of IPv6 denied)."""
    from regionset.pipelines.tools.demo.server import LoopbackServer

    try:
        recorder = ConnectionRecorder()
    except OSError as err:
        pytest.skip(f"cannot listen on {FORBIDDEN_HOST} here: {err}")
    only_one = ipaddress.ip_network("0.0.0.0/0").address_exclude(ipaddress.ip_network("127.0.0.1/32"))
    deny = (*(str(n) for n in only_one), "::/0")
    with LoopbackServer() as server:
        server.add("ok.jpg", make_jpeg(64, 48))
        stage = DownloadStage(DownloadConfig(allow_loopback=True, timeout=2, deadline=3, thread_count=4,
                                             deny_networks=deny))
        stage.ensure_setup()
        yield stage, server, recorder
    recorder.close()


# Mostly the recorder (a forbidden address) under several spellings, so a leak shows as a connection.
_TARGET_HOSTS = st.sampled_from([f"{FORBIDDEN_HOST}:{{rec}}", "127.2:{rec}", "[::ffff:127.0.0.2]:{rec}",
                                 "2130706434:{rec}", "127.0.0.1:{srv}", "localhost:{srv}", "[::1]:{srv}",
                                 "10.0.0.1", "169.254.169.254", ""])
_LOCATIONS = st.one_of(
    st.text(max_size=40),
    st.builds(lambda s, h, path: f"{s}://{h}/{path}", _SCHEMES, _TARGET_HOSTS,
              st.sampled_from(["files/ok.jpg", "x", "", "files/none.jpg", "loop"])),
    st.builds(lambda s, h: f"{s}://{h}/x", st.sampled_from(["ftp", "gopher", "FTP", "HTTP", "http"]),
              _TARGET_HOSTS),
)


@settings(max_examples=max(10, settings().max_examples // 3))
@given(locations=st.lists(_LOCATIONS, min_size=1, max_size=6),
       codes=st.lists(st.sampled_from([301, 302, 303, 307, 308]), min_size=6, max_size=6))
def test_any_redirect_gives_one_ledger_row_and_no_forbidden_connection(fuzz_stage, locations, codes):
    stage, server, recorder = fuzz_stage
    port = server.server_address[1]
    urls = []
    for loc, code in zip(locations, codes):
        target = loc.replace("{rec}", str(recorder.port)).replace("{srv}", str(port))
        urls.append(server.url(f"redirect-to?code={code}&url=" + urllib.parse.quote(target, safe="")))
    keys = [make_key(0, i, 100) for i in range(len(urls))]
    before = recorder.connections
    out = stage.process(pa.table({"key": keys, "url": urls, "caption": locations}))
    assert out.column("key").to_pylist() == keys
    assert set(out.column("status").to_pylist()) <= {"success", "failed_to_download", "failed_to_resize", "refused"}
    assert recorder.connections == before
