"""A longer fuzz run of the image loader than the test suite's (same property).

    python scripts/fuzz_loader.py --examples 20000

Mutates real images of several formats (byte flips, truncation) and checks that ``load_image``
either returns an RGB image or raises its own ImageLoadError, never anything else.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=5000)
    args = ap.parse_args()
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from test_reliability import SEEDS

    from mmcli.errors import ImageLoadError
    from mmcli.media.images import load_image

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.img"
        counts = {"ok": 0, "refused": 0}

        @settings(max_examples=args.examples, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            seed=st.integers(0, len(SEEDS) - 1),
            flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=16),
            cut=st.one_of(st.none(), st.integers(0, 10**6)),
        )
        def check(seed: int, flips: list[tuple[int, int]], cut: int | None) -> None:
            data = bytearray(SEEDS[seed])
            for pos, value in flips:
                data[pos % len(data)] = value
            if cut is not None:
                data = data[: cut % (len(data) + 1)]
            path.write_bytes(bytes(data))
            try:
                img = load_image(path, max_pixels=4_000_000)
            except ImageLoadError:
                counts["refused"] += 1
                return
            assert img.mode == "RGB"
            counts["ok"] += 1

        check()
    print(
        f"{args.examples} examples: {counts['ok']} decoded, {counts['refused']} refused with ImageLoadError, "
        "no other exception"
    )


if __name__ == "__main__":
    main()
