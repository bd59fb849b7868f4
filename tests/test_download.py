"""The download manager against a fake hub on 127.0.0.1 serving a tiny model: download, resume after
a dropped connection and after a killed process, checksum refusal, full disk, cancel, one-line
errors; then the CLI inpaints with what it downloaded."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli.main import main
from app.inference.diffusers import catalog
from app.storage import download_catalogue, download_errors, download_plan, downloads
from fake_hub import REPO, FakeHub, FakeRepo, hub, hub_env, running  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent
UNET = "unet/diffusion_pytorch_model.safetensors"
MB = 1_000_000


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fetched_paths(fake: FakeHub) -> set[str]:
    return {p.split("/resolve/", 1)[1].split("/", 1)[1] for m, p, _ in fake.requests if m == "GET" and "/resolve/" in p}


def model_refs() -> set[str]:
    return {m.ref for m in catalog.discover_models() if m.kind != "classical"}


def small_photo(folder: Path):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    Image.fromarray(image).save(folder / "in.png")
    Image.fromarray(mask).save(folder / "mask.png")
    return folder / "in.png", folder / "mask.png", image, mask


def test_cli_downloads_into_the_models_folder_then_inpaints_with_it(hub, tiny_inpaint_model, tmp_path, capsys):
    rc = main(["download", REPO, "--progress"])
    out, err = capsys.readouterr()
    target = downloads.models_dir() / "tiny-inpaint"
    assert rc == 0, err
    assert f"downloaded {target}" in out
    assert "MB/s" in err and "left" in err and "(100%)" in err  # bytes, rate, time left
    # exactly what the loader needs, byte for byte; no pickle, no safety checker, nothing staged
    assert tree(target) == tree(tiny_inpaint_model)
    assert fetched_paths(hub) == set(tree(tiny_inpaint_model))
    assert not (downloads.models_dir() / downloads.STAGING).exists()
    found = {m.ref: m for m in catalog.discover_models()}
    assert found[str(target)].usable and found[str(target)].inpainting

    # running it again fetches nothing
    assert main(["download", REPO]) == 0
    assert "already there" in capsys.readouterr().out

    image_path, mask_path, image, mask = small_photo(tmp_path)
    result = tmp_path / "out.png"
    rc = main(["inpaint", "-i", str(image_path), "-m", str(mask_path), "-o", str(result), "--model", str(target),
               "--prompt", "a cup", "--steps", "2", "--seed", "1", "--width", "256", "--height", "256", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    painted = np.asarray(Image.open(result))
    far = np.ones_like(mask, bool)
    far[8:56, 8:56] = False  # beyond the feathered edge
    assert np.array_equal(painted[far], image[far])
    assert np.any(painted[mask > 0] != image[mask > 0])


def test_a_dropped_connection_fails_in_one_line_and_the_next_run_resumes_with_range(hub, tmp_path):
    size = len(hub.repos[REPO].files[UNET])
    hub.drop_after[UNET] = 3 * MB + 1000
    with pytest.raises(download_errors.DownloadError) as failed:
        downloads.get_model(REPO, tmp_path)
    assert "run it again to resume" in str(failed.value) and "\n" not in str(failed.value)
    assert not (tmp_path / "tiny-inpaint").exists()
    part = downloads.staging_dir(tmp_path, "tiny-inpaint") / (UNET + downloads.PART)
    kept = part.stat().st_size
    assert 0 < kept < size

    result = downloads.get_model(REPO, tmp_path)
    assert hub.ranges_for(UNET)[-1] == f"bytes={kept}-"
    assert result.fetched <= sum(len(b) for b in tree(result.path).values()) - kept
    assert (result.path / UNET).read_bytes() == hub.repos[REPO].files[UNET]


def test_a_killed_download_resumes_where_it_stopped(hub, tmp_path):
    hub.rate = 2_000_000  # bytes/s: the unet takes about 3 s, time to kill the process mid-file
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "app", "download", REPO, "--to", str(tmp_path)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    part = downloads.staging_dir(tmp_path, "tiny-inpaint") / (UNET + downloads.PART)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not (part.exists() and part.stat().st_size >= 2 * MB):
            assert proc.poll() is None, f"the download ended before it could be killed: {proc.stderr.read()}"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    kept = part.stat().st_size
    assert kept >= 2 * MB and not (tmp_path / "tiny-inpaint").exists()

    hub.rate = None
    result = downloads.get_model(REPO, tmp_path)
    assert hub.ranges_for(UNET)[-1] == f"bytes={kept}-"
    assert tree(result.path)[UNET] == hub.repos[REPO].files[UNET]


@pytest.mark.parametrize("how", ["hub serves other bytes", "catalogue hash differs"])
def test_a_wrong_checksum_is_refused_and_nothing_is_installed(hub, tmp_path, monkeypatch, how):
    if how == "hub serves other bytes":
        hub.corrupt.add(UNET)
        source = REPO
    else:
        entry = download_catalogue.CatalogueEntry("tiny", "Tiny", REPO, True, "test", 0, sha256={UNET: "0" * 64})
        monkeypatch.setattr(download_catalogue, "CATALOGUE", (entry,))
        source = "tiny"
    with pytest.raises(download_errors.DownloadError, match="checksum mismatch for unet/diffusion_pytorch_model.safetensors"):
        downloads.get_model(source, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [downloads.STAGING]
    assert not (downloads.staging_dir(tmp_path, source) / (UNET + downloads.PART)).exists()


def test_a_full_disk_is_refused_before_any_byte_is_fetched(hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(downloads, "free_bytes", lambda folder: 20_000_000)
    rc = main(["download", REPO, "--to", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert "not enough disk space" in err and "needs 10.1 MB more, 20.0 MB free" in err
    assert fetched_paths(hub) == set()


def test_disk_full_while_writing_says_so(tmp_path):
    assert download_errors.explain(OSError(errno.ENOSPC, "No space left on device"), "tiny").startswith("disk full while downloading tiny")


def test_cancel_leaves_no_half_model_where_models_are_looked_for(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path))
    before = model_refs()
    seen = []

    def cancel_once_past_a_megabyte() -> bool:
        return bool(seen) and seen[-1].done > MB

    with pytest.raises(download_errors.DownloadCancelled):
        downloads.get_model(REPO, tmp_path, progress=seen.append, cancel=cancel_once_past_a_megabyte)
    assert model_refs() == before
    assert [p.name for p in tmp_path.iterdir()] == [downloads.STAGING]
    assert seen[-1].done < seen[-1].total

    result = downloads.get_model(REPO, tmp_path)
    assert str(result.path) in model_refs() - before


def test_failures_are_one_line_with_the_reason(hub, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    hub.repos["org/gated"] = FakeRepo(dict(hub.repos[REPO].files), gated_token="hf_secret")

    def fails(*args) -> str:
        assert main(["download", *args, "--to", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return err

    assert "not found" in fails("org/missing") and "(404)" in fails("org/missing")
    assert "404" in fails(REPO, "--file", "nope.safetensors")
    assert "gated (401)" in fails("org/gated") and "hf auth login" in fails("org/gated")
    with running(FakeHub(plain_files={"model.ckpt": b"a pickle"})) as web:  # another host than the hub
        assert "pickle" in fails(f"{web}/files/model.ckpt")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert "HF_HUB_OFFLINE" in fails(REPO)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert "no network" in fails(REPO)
    assert [p.name for p in tmp_path.iterdir()] in ([], [downloads.STAGING])  # nothing where models are looked for

    # with the token the gated repo downloads
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert main(["download", "org/gated", "--to", str(tmp_path)]) == 0
    assert (tmp_path / "gated" / UNET).is_file()


def test_a_direct_url_of_one_safetensors_file_gets_no_hub_token(hub, tiny_single_file, tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINT_STUDIO_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    web = FakeHub(plain_files={"tiny-sd.safetensors": tiny_single_file.read_bytes()})
    with running(web) as url:
        result = downloads.get_model(f"{url}/files/tiny-sd.safetensors", tmp_path)
    assert len(web.requests) == 2 and web.authorizations == [None, None]
    assert result.path == tmp_path / "tiny-sd.safetensors"
    assert result.path.read_bytes() == tiny_single_file.read_bytes()
    info = next(m for m in catalog.discover_models() if m.ref == str(result.path))
    assert info.kind == "single_file" and info.usable and info.inpainting
    assert not (tmp_path / downloads.STAGING).exists()


def test_only_what_sd15_needs_is_chosen_from_a_real_repo_listing():
    names = {
        "model_index.json", "v1-5-pruned.safetensors", "v1-5-pruned-emaonly.ckpt", "sd-v1-5-inpainting.ckpt",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.non_ema.safetensors",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
        "text_encoder/pytorch_model.bin", "tokenizer/merges.txt", "tokenizer/vocab.json",
        "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "scheduler/scheduler_config.json",
        "safety_checker/config.json", "safety_checker/model.safetensors", "feature_extractor/preprocessor_config.json",
    }
    chosen = download_plan.select_repo_files(names, "sd", None, allow_pickle=False)
    assert sorted(chosen) == sorted([
        "model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
        "scheduler/scheduler_config.json", "tokenizer/merges.txt", "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json", "tokenizer/vocab.json", "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors", "text_encoder/model.fp16.safetensors"])
    pickle_only = {n for n in names if not n.startswith("unet/") or n.endswith(".json")} | {"unet/diffusion_pytorch_model.bin"}
    with pytest.raises(download_errors.DownloadError, match="unet/ has only pickle .bin weights"):
        download_plan.select_repo_files(pickle_only, "sd", None, allow_pickle=False)
    assert "unet/diffusion_pytorch_model.bin" in download_plan.select_repo_files(pickle_only, "sd", None, allow_pickle=True)
    with pytest.raises(download_errors.DownloadError, match="several checkpoints; choose one with --file"):
        download_plan.select_repo_files({"a.safetensors", "b.safetensors"}, "x/y", None, allow_pickle=False)


def test_progress_text_has_bytes_rate_and_time_left():
    text = download_catalogue.format_progress(downloads.DownloadProgress(312_400_000, 2_130_000_000, 8_200_000, 221.7, "unet/x"))
    assert text == "312.4 MB / 2.1 GB (15%) · 8.2 MB/s · 3m42s left · unet/x"


def test_the_same_model_is_downloaded_by_one_caller_at_a_time(hub, tmp_path):
    import threading

    hub.rate = 1_000_000
    stop = threading.Event()
    first: list[BaseException] = []

    def slow_download():
        try:
            downloads.get_model(REPO, tmp_path, cancel=stop.is_set)
        except download_errors.DownloadError as exc:
            first.append(exc)

    worker = threading.Thread(target=slow_download)
    worker.start()
    part = downloads.staging_dir(tmp_path, "tiny-inpaint") / (UNET + downloads.PART)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not part.exists():
        time.sleep(0.02)
    try:
        with pytest.raises(download_errors.DownloadError, match="already being downloaded"):
            downloads.get_model(REPO, tmp_path)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert isinstance(first[0], download_errors.DownloadCancelled)
    hub.rate = None
    assert downloads.get_model(REPO, tmp_path).path.is_dir()  # the lock went with the first caller
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-inpaint"]


def test_listing_the_catalogue_loads_no_torch_qt_or_network_library():
    code = ("import sys; from app.cli.main import main; rc = main(['download', '--list']); "
            "bad = [m for m in ('torch', 'PySide6', 'huggingface_hub') if m in sys.modules]; "
            "print(rc, bad)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr
    assert all(e.key in done.stdout and e.page in done.stdout for e in download_catalogue.CATALOGUE)


def test_hub_page_and_file_links_go_through_the_hub(hub, tmp_path):
    page = downloads.get_model(f"{hub.url}/{REPO}", tmp_path)
    assert page.path == tmp_path / "tiny-inpaint" and (page.path / UNET).is_file()
    link = downloads.get_model(f"{hub.url}/{REPO}/blob/main/{UNET}", tmp_path)
    assert link.path == tmp_path / "diffusion_pytorch_model.safetensors"
    assert link.path.read_bytes() == hub.repos[REPO].files[UNET]
    assert download_plan._hub_reference("https://example.com/org/name") is None
