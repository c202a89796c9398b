"""A minimal LWM2M bootstrap server on aiocoap (a second CoAP stack, not ours), for
tests/peer_aiocoap.rs.

Usage: aiocoap_bootstrap.py PORT SERVER_URI LIFETIME

Listens on 127.0.0.1:PORT. For each Bootstrap-Request (POST /bs?ep=NAME) it answers 2.04, then
sends the client: Discover /0, Delete /0, Delete /1, a Write of /0/N in SenML JSON (NoSec,
SERVER_URI, short server id 101; N is the first instance id the Discover did not list), a Write
of /1/0 in TLV (lifetime LIFETIME, binding U; encoded here by hand) and the Bootstrap-Finish.
Facts go to stdout as JSON lines: {"ev": "listening"}, {"ev": "request", "ep": ...} and
{"ev": "done", "ep": ..., "codes": {...}, "discover": "..."} (or "ev": "failed"). It exits
when its stdin closes.
"""

import asyncio
import json
import re
import sys

import aiocoap
import aiocoap.meta
import aiocoap.resource as resource
from aiocoap import Code, Message

LINK_FORMAT = 40
SENML_JSON = 110
TLV = 11542


def say(**fact):
    print(json.dumps(fact), flush=True)


def tlv_resource(rid, value):
    """One OMA TLV "resource with value" with an 8-bit id (rid < 256)."""
    if isinstance(value, bool):
        body = bytes([1 if value else 0])
    elif isinstance(value, int):
        for size in (1, 2, 4, 8):
            if -(1 << (8 * size - 1)) <= value < (1 << (8 * size - 1)):
                body = value.to_bytes(size, "big", signed=True)
                break
    else:
        body = value.encode()
    if len(body) < 8:
        return bytes([0b11000000 | len(body), rid]) + body
    return bytes([0b11001000, rid, len(body)]) + body


class Bootstrap(resource.Resource):
    def __init__(self, server_uri, lifetime):
        super().__init__()
        self.context = None
        self.server_uri = server_uri
        self.lifetime = lifetime

    async def render_post(self, request):
        query = dict(q.split("=", 1) for q in request.opt.uri_query if "=" in q)
        endpoint = query.get("ep")
        if not endpoint:
            return Message(code=Code.BAD_REQUEST)
        say(ev="request", ep=endpoint, query=list(request.opt.uri_query))
        asyncio.get_running_loop().create_task(
            self.provision(endpoint, request.remote.hostinfo))
        return Message(code=Code.CHANGED)

    async def ask(self, base, code, path, payload=b"", content_format=None, accept=None):
        message = Message(code=code, uri=base + path, payload=payload)
        if content_format is not None:
            message.opt.content_format = content_format
        if accept is not None:
            message.opt.accept = accept
        response = await self.context.request(message).response
        return response

    async def provision(self, endpoint, hostinfo):
        base = "coap://" + hostinfo
        codes = {}
        try:
            discover = await self.ask(base, Code.GET, "/0", accept=LINK_FORMAT)
            codes["discover"] = str(discover.code)
            listed = [int(i) for i in re.findall(r"</0/(\d+)>", discover.payload.decode())]
            instance = next(i for i in range(65535) if i not in listed)
            codes["delete /0"] = str((await self.ask(base, Code.DELETE, "/0")).code)
            codes["delete /1"] = str((await self.ask(base, Code.DELETE, "/1")).code)
            security = json.dumps([
                {"bn": "/0/%d/" % instance, "n": "0", "vs": self.server_uri},
                {"n": "1", "vb": False},
                {"n": "2", "v": 3},
                {"n": "10", "v": 101},
            ]).encode()
            written = await self.ask(base, Code.PUT, "/0/%d" % instance, security, SENML_JSON)
            codes["write security"] = str(written.code)
            server = (tlv_resource(0, 101) + tlv_resource(1, self.lifetime)
                      + tlv_resource(6, True) + tlv_resource(7, "U"))
            written = await self.ask(base, Code.PUT, "/1/0", server, TLV)
            codes["write server"] = str(written.code)
            codes["finish"] = str((await self.ask(base, Code.POST, "/bs")).code)
            ok = all(c.startswith("2.") for c in codes.values())
            say(ev="done" if ok else "failed", ep=endpoint, codes=codes,
                discover=discover.payload.decode(), instance=instance)
        except Exception as error:  # a test peer reports, it does not die
            say(ev="failed", ep=endpoint, codes=codes, error=repr(error))


async def main():
    port, server_uri, lifetime = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    bootstrap = Bootstrap(server_uri, lifetime)
    site = resource.Site()
    site.add_resource(["bs"], bootstrap)
    context = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", port))
    bootstrap.context = context
    say(ev="listening", port=port, aiocoap=aiocoap.meta.version)
    stdin_closed = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin, lambda: sys.stdin.read(1) or stdin_closed.set())
    await stdin_closed.wait()
    await context.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
