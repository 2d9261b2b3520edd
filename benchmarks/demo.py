"""Time to answer of ``infoclip demo``: a 1-megapixel image sent to ``/segment`` through gradio_client.

The page serves a CAT-Seg (default ViT-B/16 at 384) with random weights (speed does not depend on the values;
nothing is downloaded) on a free loopback port, and gets a sequence of requests for the same image: the first
request with a class list also encodes its prompts, later ones reuse them (the model caches the embeddings of
a class list, whatever the protocol). Times are wall seconds from ``predict`` to the answer (upload, queue,
segmentation, drawing, writing the outputs, the answer's files), and the CPU seconds of the process (server
and client) over the same span.

    python benchmarks/demo.py                                   # ViT-B/16; VOC-20 sliding/whole, ADE-150 whole
    python benchmarks/demo.py --preset catseg-tiny --threads 1  # a quick smoke run
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path


def one_megapixel_photo(folder: Path) -> Path:
    """chelsea.jpg (shipped with the demo) scaled to 1155 x 866 (1,000,230 pixels), saved as JPEG."""
    from PIL import Image

    from infoclip.demo import example_images

    path = folder / "chelsea_1mp.jpg"
    with Image.open(example_images()[0][0]) as image:
        image.convert("RGB").resize((1155, 866), Image.BICUBIC).save(path, quality=90)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="catseg-vit-b16")
    parser.add_argument(
        "--requests", default="voc20:sliding,voc20:sliding,voc20:whole,ade150:whole,ade150:whole",
        help="VOCABULARY:PROTOCOL per request, in order",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from gradio_client import Client, handle_file

    from infoclip.adapters import get_adapter
    from infoclip.config import load_config
    from infoclip.demo.app import build_app, launch
    from infoclip.demo.page import DemoPage
    from infoclip.segmentation.segmenter import Segmenter

    adapter = get_adapter("catseg")
    torch.manual_seed(0)
    model = adapter.build_model(load_config(adapter.config_path(args.preset))["model"])
    page = DemoPage(Segmenter(model, f"{args.preset} (random weights)", "cpu"))
    app = build_app(page)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = launch(app, "127.0.0.1", port, block=False, quiet=True)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            photo = one_megapixel_photo(Path(tmp))
            client = Client(url, verbose=False)
            seen = set()
            for request in args.requests.split(","):
                vocab, protocol = request.split(":")
                prompts = "cached" if vocab in seen else "encoded"
                seen.add(vocab)
                start, cpu = time.perf_counter(), time.process_time()
                status = client.predict(
                    handle_file(str(photo)), "", vocab, protocol, "fp32", "", 0.5, False, api_name="/segment"
                )[0]
                rows.append((vocab, protocol, prompts, time.perf_counter() - start, time.process_time() - cpu, status))
                print(rows[-1], flush=True)
    finally:
        app.close()
        page.close()
    print(f"\n{args.preset}, 1155x866 JPEG, CPU, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| classes | protocol | prompts | wall s | CPU s |")
    print("|---|---|---|---:|---:|")
    for vocab, protocol, prompts, wall, cpu, _ in rows:
        print(f"| {vocab} | {protocol} | {prompts} | {wall:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
