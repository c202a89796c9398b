"""A CoAP file server on aiocoap (a second CoAP stack, not ours) serving one firmware image with
Block2, for tests/peer_aiocoap_firmware.rs.

Usage: aiocoap_file_server.py PORT SIZE SEED PATH

Listens on 127.0.0.1:PORT and serves at PATH (e.g. /fw/image.bin) an image of SIZE bytes made
from SEED: the SHA-256 digests of "SEED:0", "SEED:1", ... end to end, cut to SIZE, so the test
can make the same bytes. aiocoap itself cuts the image into Block2 blocks of the size each GET
asks for. Facts go to stdout as JSON lines: {"ev": "listening", "port", "size", "sha256",
"aiocoap"} once ready, then {"ev": "get", "block": N, "szx": S} for every GET of PATH (block
and szx are null when the GET has no Block2 option). It exits when its stdin closes.
"""

import asyncio
import hashlib
import json
import sys

import aiocoap
import aiocoap.meta
import aiocoap.resource as resource
from aiocoap import Message

OCTET_STREAM = 42


def say(**fact):
    print(json.dumps(fact), flush=True)


def image(size, seed):
    digests = (hashlib.sha256(b"%d:%d" % (seed, i)).digest() for i in range((size + 31) // 32))
    return b"".join(digests)[:size]


class Image(resource.Resource):
    def __init__(self, body):
        super().__init__()
        self.body = body

    async def render_get(self, request):
        # Called for block 0 only: aiocoap keeps the whole response and serves the other
        # blocks from it.
        return Message(payload=self.body, content_format=OCTET_STREAM)


class LoggingSite(resource.Site):
    """Says which block every GET of the image asks for, before aiocoap answers it."""

    def __init__(self, path):
        super().__init__()
        self.path = tuple(path)

    async def render_to_pipe(self, pipe):
        request = pipe.request
        if request.code == aiocoap.GET and tuple(request.opt.uri_path) == self.path:
            block2 = request.opt.block2
            say(ev="get",
                block=None if block2 is None else block2.block_number,
                szx=None if block2 is None else block2.size_exponent)
        await super().render_to_pipe(pipe)


async def main():
    port, size, seed, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    segments = [s for s in path.split("/") if s]
    body = image(size, seed)
    site = LoggingSite(segments)
    site.add_resource(segments, Image(body))
    context = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", port))
    say(ev="listening", port=port, size=len(body), sha256=hashlib.sha256(body).hexdigest(),
        aiocoap=aiocoap.meta.version)
    stdin_closed = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin, lambda: sys.stdin.read(1) or stdin_closed.set())
    await stdin_closed.wait()
    await context.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
