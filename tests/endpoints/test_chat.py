"""Chat completions (llmsurge/engine/endpoints/chat.py): tools and images, its own options."""

from __future__ import annotations

from pathlib import Path

from llmsurge.engine.client import one_request
from llmsurge.engine.httpclient import make_client
from llmsurge.engine.scenario import RequestShape
from llmsurge.net import Target
from tests.endpoints.conftest import run_endpoint
from tests.helpers import run_cli


def test_tool_calls_are_output_and_their_arguments_are_checked(tmp_path: Path) -> None:
    s, reqs, _out = run_endpoint(tmp_path, "--tools", "3")
    assert s["completed"] == 24 and s["n_ttft"] == 24 and s["total_output_tokens"] == 24 * 12
    assert all(r["finish_reason"] == "tool_calls" and not r.get("degenerate") for r in reqs)


async def test_tool_call_arguments_that_are_not_json_are_degenerate(odd_server: str) -> None:
    from llmsurge.engine.worker import judge_answer

    async with make_client() as c:
        rec = await one_request(c, Target(odd_server, "m"), RequestShape(tools=1, ignore_eos=False), "a b", 8)
    assert rec.ok and rec.ttft is not None and rec.finish_reason == "tool_calls"
    judge_answer(rec, None)
    assert "arguments are not JSON" in rec.degenerate


def test_images_are_real_pngs_each_different() -> None:
    import random
    import struct
    import zlib

    from llmsurge.images import png_size, synthetic_png, with_images

    rng = random.Random(3)
    a, b = synthetic_png(64, 32, rng), synthetic_png(64, 32, rng)
    assert a != b and png_size(a) == (64, 32)
    length = struct.unpack(">I", a[33:37])[0]  # the IDAT chunk after the 8-byte signature and 25-byte IHDR
    assert a[37:41] == b"IDAT" and len(zlib.decompress(a[41 : 41 + length])) == 32 * (1 + 3 * 64)  # Adler-32 holds
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(b))  # an image library reads it whole
    image.load()
    assert image.size == (64, 32) and image.mode == "RGB"
    messages = with_images("describe", 2, (8, 8), rng)
    parts = messages[0]["content"]
    assert parts[0] == {"type": "text", "text": "describe"} and len(parts) == 3
    assert all(p["image_url"]["url"].startswith("data:image/png;base64,") for p in parts[1:])


def test_images_count_as_prompt_tokens(tmp_path: Path) -> None:
    s, reqs, _out = run_endpoint(tmp_path, "--images", "2", "--image-size", "448x448")
    assert s["completed"] == 24 and s["failed"] == 0
    assert all(r["prompt_tokens"] >= 2 * 16 * 16 for r in reqs)  # the server counted 256 tokens an image
    r = run_cli("run", "--images", "1", "--image-size", "big", timeout=60)
    assert r.returncode == 2 and "use WIDTHxHEIGHT" in r.stderr and "Traceback" not in r.stderr
