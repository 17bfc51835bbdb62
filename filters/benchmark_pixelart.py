"""Pixel-art quality benchmark: Pixelfleet's adaptive palette against libimagequant.

    python -m filters.benchmark_pixelart [--smoke] [--json] [--repeat N] [--no-peer]
    make bench-pixelart          # builds the peer's venv first, then runs this

On a fixed set of photos - the shared corpus's flower.jpg, flower2.jpg and hopper.png
(the hopper.* files are one picture in five formats: one copy) plus deterministic
photo-like images drawn here - each image is quantised at block size 1 to 8 and 16
colours, without and with dithering, by Pixelfleet (`filters.cpu.pixelate`, dither
`floyd-steinberg-adaptive`) and by libimagequant (pngquant's engine, the `imagequant`
package, dithering level 1.0) in the same run. Scores, per image then averaged:
- mean CIEDE2000 between the original and the quantised pixels (lower is better);
- the same after a Gaussian blur (sigma LOWPASS_SIGMA pixels, in linear light) of both:
  the error seen from a distance, which dithering exists to reduce - so a dither that
  scores well per pixel only by dithering less shows here;
- salient colours kept: the share of the image's salient reference colours
  (`salient_reference_colours`: vivid colours covering a small but real area, found
  without any quantiser) that have a colour of the result within CIEDE2000 10;
- time of the quantisation call alone (best of --repeat), both sides.

libimagequant never enters the project's environment: it lives in its own venv
(var/bench/imagequant-venv, from bench/imagequant-requirements.txt) and runs
bench/imagequant_runner.py as a subprocess. Without that venv the peer's columns say
"absent" (the smoke mode, which `make test` runs, is meant to work either way).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from filters import colour

ROOT = Path(__file__).resolve().parents[1]
PHOTO_DIR = ROOT.parent / "shared" / "images" / "valid"
PHOTOS = ("flower.jpg", "flower2.jpg", "hopper.png")
PEER_PYTHON = ROOT / "var" / "bench" / "imagequant-venv" / "bin" / "python"
PEER_RUNNER = ROOT / "bench" / "imagequant_runner.py"
COLOURS = (8, 16)
# label -> (Pixelfleet dither, libimagequant dithering level)
DITHERING = {"none": ("none", 0.0), "dithered": ("floyd-steinberg-adaptive", 1.0)}
SALIENT_CELL = 12.0          # CIELAB cell side when counting colours
SALIENT_CHROMA = 40.0        # C*ab at or above which a colour is vivid
SALIENT_MIN_SHARE = 0.0002   # a cell needs 0.02 % of the pixels (and 16 at least)
SALIENT_SEPARATION = 10.0    # reference colours are this far apart (CIEDE2000)
KEPT_WITHIN = 10.0           # a reference colour is kept when the result has one this close
LOWPASS_SIGMA = 1.5          # pixels: the low-pass score's Gaussian


@dataclass(frozen=True)
class TestImage:
    name: str
    pixels: np.ndarray  # (H, W, 3) uint8


def _smooth_noise(rng: np.random.Generator, height: int, width: int, octaves: int) -> np.ndarray:
    """Fractal value noise in about -1..1: random grids at doubling resolutions, upsampled
    bilinearly and summed with halving amplitudes."""
    import cv2

    total = np.zeros((height, width), np.float32)
    amplitude, cells = 1.0, 4
    for _ in range(octaves):
        grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
        total += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        amplitude *= 0.5
        cells *= 2
    return total / 1.5


def photo_like(width: int, height: int, seed: int) -> np.ndarray:
    """A deterministic photo-like RGB image: a sky gradient, textured hills and foliage,
    soft shading, a few larger muted objects, small vivid flowers/signs (the salient
    colours), sensor noise and a slight lens blur."""
    import cv2

    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    img = np.empty((height, width, 3), np.float32)
    sky_top, sky_low = np.array([70, 120, 200], np.float32), np.array([200, 220, 235], np.float32)
    img[:] = sky_top + (sky_low - sky_top) * np.clip(y / 0.45, 0, 1)[..., None]
    horizon = 0.42 + 0.08 * _smooth_noise(rng, 1, width, 3)[0][None, :]
    ground = y > horizon
    texture = _smooth_noise(rng, height, width, 6)
    greens = np.stack([60 + 40 * texture, 110 + 45 * texture, 40 + 20 * texture], axis=-1)
    shade = (0.65 + 0.35 * (1 - y))[..., None]
    img = np.where(ground[..., None], greens * shade, img)
    for _ in range(4):  # muted objects: rocks, a path, a wall
        cx, cy = rng.uniform(0.1, 0.9), rng.uniform(0.5, 0.9)
        rx, ry = rng.uniform(0.05, 0.15), rng.uniform(0.04, 0.1)
        base = rng.uniform(90, 170) + rng.uniform(-20, 20, 3)
        d = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
        mask = np.clip((1.2 - d) / 0.4, 0, 1)[..., None]
        img = img * (1 - mask) + (base * (0.8 + 0.2 * texture[..., None])) * mask
    vivid = np.array([[220, 30, 40], [250, 200, 30], [160, 40, 190], [250, 120, 20],
                      [30, 170, 200]], np.float32)
    for i in range(int(28 * width * height / (640 * 480)) + 6):  # small vivid spots
        cx, cy = rng.uniform(0.03, 0.97), rng.uniform(0.45, 0.97)
        r = rng.uniform(2.0, 5.5) * height / 480
        d = ((x - cx) * width) ** 2 + ((y - cy) * height) ** 2
        mask = np.clip((r * r - d) / (r * r * 0.3), 0, 1)[..., None]
        tint = vivid[i % len(vivid)] * rng.uniform(0.85, 1.0)
        img = img * (1 - mask) + tint * mask
    img += rng.normal(0, 3.0, img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (3, 3), 0.6)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def load_photo(name: str) -> np.ndarray:
    from filters.io import decode_image

    image = decode_image((PHOTO_DIR / name).read_bytes())
    return np.ascontiguousarray(image[..., :3])


def corpus(smoke: bool = False) -> list[TestImage]:
    """The benchmark's images; the smoke set is one photo and one small synthetic image,
    and skips the photos when the shared corpus is absent."""
    images: list[TestImage] = []
    photos = ("flower2.jpg",) if smoke else PHOTOS
    if PHOTO_DIR.is_dir():
        images += [TestImage(name, load_photo(name)) for name in photos]
    if smoke:
        images.append(TestImage("photo-like 160x120", photo_like(160, 120, 1)))
    else:
        images.append(TestImage("photo-like 640x480", photo_like(640, 480, 1)))
        images.append(TestImage("photo-like 1280x720", photo_like(1280, 720, 2)))
    return images


def salient_reference_colours(image: np.ndarray) -> np.ndarray:
    """(k, 3) CIELAB colours a good palette should keep, found without any quantiser.

    Pixels are counted in CIELAB cells of SALIENT_CELL; a cell is a candidate when it
    holds at least SALIENT_MIN_SHARE of the pixels (16 at least: not a stray pixel) and
    its mean colour is vivid (C*ab >= SALIENT_CHROMA). Candidates are taken largest
    first, skipping any within SALIENT_SEPARATION of one already taken, so each distinct
    vivid colour counts once - the flower's small red buds included.
    """
    px = image[..., :3].reshape(-1, 3)
    lab = colour.srgb_to_cielab(px)
    key = np.floor(lab / SALIENT_CELL).astype(np.int64) + 64
    keys = (key[:, 0] * 256 + key[:, 1]) * 256 + key[:, 2]
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    sums = np.zeros((len(unique), 3))
    np.add.at(sums, inverse, lab)
    means = sums / counts[:, None]
    chroma = np.hypot(means[:, 1], means[:, 2])
    ok = (counts >= max(16, SALIENT_MIN_SHARE * len(px))) & (chroma >= SALIENT_CHROMA)
    order = np.nonzero(ok)[0]
    order = order[np.argsort(-counts[order], kind="stable")]
    kept: list[np.ndarray] = []
    for i in order:
        if not kept or colour.delta_e_2000(np.array(kept), means[i]).min() >= SALIENT_SEPARATION:
            kept.append(means[i])
    return np.array(kept).reshape(-1, 3)


def lowpass(image: np.ndarray) -> np.ndarray:
    """(N, 3) CIELAB of the image blurred by a Gaussian of LOWPASS_SIGMA in linear light
    (how colours mix at a distance)."""
    import cv2

    linear = colour.srgb_to_linear(image[..., :3]).astype(np.float32)
    blurred = cv2.GaussianBlur(linear, (0, 0), LOWPASS_SIGMA, borderType=cv2.BORDER_REFLECT_101)
    return colour.srgb_to_cielab(colour.linear_to_srgb(blurred).reshape(-1, 3))


def score(original: np.ndarray, result: np.ndarray, references: np.ndarray) -> dict[str, Any]:
    """Mean CIEDE2000 of the pixels and of the low-pass images, and how many reference
    colours the result keeps."""
    lab_a = colour.srgb_to_cielab(original[..., :3].reshape(-1, 3))
    lab_b = colour.srgb_to_cielab(result[..., :3].reshape(-1, 3))
    used = colour.srgb_to_cielab(np.unique(result[..., :3].reshape(-1, 3), axis=0))
    kept = 0
    for ref in references:
        if colour.delta_e_2000(used, ref).min() <= KEPT_WITHIN:
            kept += 1
    return {"mean_de2000": float(colour.delta_e_2000(lab_a, lab_b).mean()),
            "lowpass_de2000": float(colour.delta_e_2000(lowpass(original),
                                                         lowpass(result)).mean()),
            "salient_kept": kept, "salient_total": int(len(references)),
            "colours_used": int(len(used))}


def pixelfleet(image: np.ndarray, colours: int, dither: str, repeat: int
               ) -> tuple[np.ndarray, float]:
    """Pixelfleet's result at block size 1 and the best wall time (ms) of `repeat` calls."""
    from filters import cpu

    def call() -> np.ndarray:
        return cpu.pixelate(image, block_size=1, palette="adaptive", palette_size=colours,
                            dither=dither, upscale=False)

    call()  # compile / load the kernels outside the timing
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = call()
        times.append((time.perf_counter() - start) * 1000.0)
    return out, min(times)


class PeerUnavailable(RuntimeError):
    """libimagequant's venv is missing or its runner failed."""


def libimagequant(jobs: list[tuple[np.ndarray, int, float]], repeat: int,
                  python: Path = PEER_PYTHON) -> list[tuple[np.ndarray, float]]:
    """Each (image, colours, dithering level) quantised by libimagequant in its own venv;
    (result, best ms) per job."""
    if not Path(python).exists():
        raise PeerUnavailable(f"no libimagequant venv at {python} (make bench-pixelart builds it)")
    with tempfile.TemporaryDirectory(prefix="bench-pixelart-") as tmp:
        items = []
        for i, (image, colours, level) in enumerate(jobs):
            h, w = image.shape[:2]
            rgba = np.concatenate([image[..., :3], np.full((h, w, 1), 255, np.uint8)], axis=2)
            path = Path(tmp) / f"{i}.rgba"
            path.write_bytes(np.ascontiguousarray(rgba).tobytes())
            items.append({"rgba": str(path), "width": w, "height": h, "colours": colours,
                          "dithering": level, "out": str(Path(tmp) / f"{i}.idx")})
        proc = subprocess.run([str(python), str(PEER_RUNNER)], input=json.dumps(
            {"repeat": repeat, "items": items}), capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise PeerUnavailable(f"imagequant runner failed: {proc.stderr[-1500:]}")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        results = []
        for (image, _, _), item, res in zip(jobs, items, report["results"]):
            palette = np.array(res["palette"], np.uint8).reshape(-1, 4)[:, :3]
            idx = np.frombuffer(Path(item["out"]).read_bytes(), np.uint8)
            results.append((palette[idx].reshape(image.shape[:2] + (3,)), res["best_ms"]))
        return results


def run(smoke: bool = False, repeat: int = 3, peer: bool = True,
        peer_python: Path = PEER_PYTHON) -> dict[str, Any]:
    """Every image x colours x dithering on both sides; the machine-readable report."""
    images = corpus(smoke)
    refs = {img.name: salient_reference_colours(img.pixels) for img in images}
    configs = [(k, label) for k in COLOURS for label in DITHERING]
    peer_note = None
    peer_results: dict[tuple[str, int, str], tuple[np.ndarray, float]] = {}
    if peer:
        jobs = [(img, k, label) for img in images for k, label in configs]
        try:
            outs = libimagequant([(img.pixels, k, DITHERING[label][1]) for img, k, label in jobs],
                                 repeat, peer_python)
            peer_results = {(img.name, k, label): out for (img, k, label), out in zip(jobs, outs)}
        except PeerUnavailable as exc:
            peer_note = str(exc)
    else:
        peer_note = "skipped (--no-peer)"
    rows = []
    for img in images:
        for k, label in configs:
            out, ms = pixelfleet(img.pixels, k, DITHERING[label][0], repeat)
            row = {"image": img.name, "size": f"{img.pixels.shape[1]}x{img.pixels.shape[0]}",
                   "colours": k, "dither": label,
                   "pixelfleet": {**score(img.pixels, out, refs[img.name]), "ms": ms}}
            if (img.name, k, label) in peer_results:
                peer_out, peer_ms = peer_results[(img.name, k, label)]
                row["libimagequant"] = {**score(img.pixels, peer_out, refs[img.name]),
                                        "ms": peer_ms}
            rows.append(row)
    return {"smoke": smoke, "repeat": repeat, "threads": numba.get_num_threads(),
            "cpu_count": os.cpu_count(), "peer": peer_note or "libimagequant (imagequant)",
            "images": [img.name for img in images], "rows": rows,
            "summary": summarise(rows)}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per colours x dithering: mean over images of each score, both sides."""
    out = []
    for k in COLOURS:
        for label in DITHERING:
            group = [r for r in rows if r["colours"] == k and r["dither"] == label]
            entry: dict[str, Any] = {"colours": k, "dither": label}
            for side in ("pixelfleet", "libimagequant"):
                if not all(side in r for r in group) or not group:
                    continue
                entry[side] = {
                    "mean_de2000": statistics.fmean(r[side]["mean_de2000"] for r in group),
                    "lowpass_de2000": statistics.fmean(r[side]["lowpass_de2000"]
                                                       for r in group),
                    "salient_kept": sum(r[side]["salient_kept"] for r in group),
                    "salient_total": sum(r[side]["salient_total"] for r in group),
                    "ms": statistics.fmean(r[side]["ms"] for r in group),
                }
            if "libimagequant" in entry:
                entry["de_ratio"] = (entry["pixelfleet"]["mean_de2000"]
                                     / entry["libimagequant"]["mean_de2000"])
            out.append(entry)
    return out


def format_table(report: dict[str, Any]) -> str:
    """Markdown tables: the summary, then every image."""
    def side(entry: dict[str, Any], name: str) -> tuple[str, str, str, str]:
        s = entry.get(name)
        if not s:
            return "absent", "-", "-", "-"
        return (f"{s['mean_de2000']:.2f}", f"{s['salient_kept']}/{s['salient_total']}",
                f"{s['ms']:.1f}", f"{s['lowpass_de2000']:.2f}")

    lines = [f"images: {', '.join(report['images'])}; peer: {report['peer']}; "
             f"numba threads {report['threads']}; best of {report['repeat']} calls",
             "",
             "| colours | dither | ΔE2000 Pixelfleet | ΔE2000 libimagequant | ratio | "
             "low-pass ΔE2000 Pixelfleet | low-pass ΔE2000 libimagequant | salient kept "
             "Pixelfleet | salient kept libimagequant | ms Pixelfleet | ms libimagequant |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for entry in report["summary"]:
        pf, lq = side(entry, "pixelfleet"), side(entry, "libimagequant")
        ratio = f"{entry['de_ratio']:.3f}" if "de_ratio" in entry else "-"
        lines.append(f"| {entry['colours']} | {entry['dither']} | {pf[0]} | {lq[0]} | {ratio} | "
                     f"{pf[3]} | {lq[3]} | {pf[1]} | {lq[1]} | {pf[2]} | {lq[2]} |")
    lines += ["", "| image | colours | dither | ΔE2000 Pixelfleet | ΔE2000 libimagequant | "
              "salient Pixelfleet | salient libimagequant | ms Pixelfleet | ms libimagequant |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        pf, lq = side(row, "pixelfleet"), side(row, "libimagequant")
        lines.append(f"| {row['image']} | {row['colours']} | {row['dither']} | {pf[0]} | "
                     f"{lq[0]} | {pf[1]} | {lq[1]} | {pf[2]} | {lq[2]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m filters.benchmark_pixelart",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="two small images, seconds (what make test runs)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per case (best)")
    parser.add_argument("--no-peer", action="store_true", help="Pixelfleet only")
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON,
                        help="the libimagequant venv's python")
    args = parser.parse_args(argv)
    report = run(args.smoke, max(1, args.repeat), not args.no_peer, args.peer_python)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
