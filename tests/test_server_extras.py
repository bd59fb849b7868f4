"""A1111's postprocessing routes (issue 27): ``/sdapi/v1/extra-single-image``, ``upscalers``,
``face-restorers``, with tiny random-weight spandrel models found through the real discovery,
driven by FastAPI's TestClient and by webuiapi against a real uvicorn on 127.0.0.1. Runs go
through the one job queue (in turn with generations, 429 when full); errors name A1111's fields."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest
import requests
import webuiapi
from fastapi.testclient import TestClient
from PIL import Image, ImageCms

import restoration_models as rm
from app.core.geometry import Bounds
from app.server.app import create_app
from app.server.config import ServerConfig
from app.service import extras
from app.service.generation import GenerationService
from app.service.restoration import RestorationRequest, RestorationService
from serverutil import GatedBackend, centre_mask, running_server, scene

TOKEN = "extras-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAP_S = 20


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A models folder holding an upscaler under A1111's file name, another of its own, and a
    face model; an empty A1111 install (nothing of this machine's is found)."""
    base = tmp_path_factory.mktemp("extras")
    models, a1111 = base / "models", base / "a1111"
    (a1111 / "models").mkdir(parents=True)
    paths = {
        "x2": rm.save(rm.esrgan_x2(), models / "RealESRGAN" / "RealESRGAN_x2plus.safetensors"),
        "x4": rm.save(rm.compact_x4(), models / "ESRGAN" / "tiny-compact-x4.pth"),
        "faces": rm.save(rm.restoreformer(), models / "GFPGAN" / "tiny-restoreformer.safetensors"),
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INPAINT_STUDIO_MODELS", str(models))
        mp.setenv("INPAINT_STUDIO_A1111", str(a1111))
        mp.setenv("TORCH_HOME", str(base / "torch"))  # no face detector file anywhere
        yield paths


@pytest.fixture(scope="module")
def client(library, tmp_path_factory):
    config = ServerConfig(data_dir=tmp_path_factory.mktemp("serve"), model="builtin:telea", tokens=(TOKEN,))
    with TestClient(create_app(config), base_url="http://127.0.0.1", headers=AUTH) as c:
        yield c


def png_claiming(width: int, height: int) -> bytes:
    """A few bytes of PNG whose header declares ``width``×``height`` pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def png_b64(pixels: np.ndarray, **save) -> str:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", **save)
    return base64.b64encode(out.getvalue()).decode()


def decoded(answer: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(answer["image"])))


def extra(client, pixels: np.ndarray, **fields):
    return client.post("/sdapi/v1/extra-single-image", json={"image": png_b64(pixels), **fields})


def test_the_listings_name_what_is_installed_in_a1111s_words(client):
    upscalers = client.get("/sdapi/v1/upscalers").json()
    names = [u["name"] for u in upscalers]
    assert names[:3] == ["None", "Lanczos", "Nearest"] and sorted(names[3:]) == ["R-ESRGAN 2x+", "tiny-compact-x4"]
    by_name = {u["name"]: u for u in upscalers}
    assert by_name["R-ESRGAN 2x+"]["scale"] == 2 and by_name["R-ESRGAN 2x+"]["model_name"] == "ESRGAN"
    assert by_name["tiny-compact-x4"]["scale"] == 4 and by_name["tiny-compact-x4"]["model_name"] == "Compact"
    assert all(u["model_path"] is None for u in upscalers)  # never this machine's folders
    assert client.get("/sdapi/v1/face-restorers").json() == [{"name": "GFPGAN", "cmd_dir": None}]


def test_an_upscale_gives_the_models_own_pixels_and_keeps_profile_and_print_size(client, library):
    image = rm.photo(20, 30)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    body = {"image": png_b64(image, icc_profile=icc, dpi=(300, 300)), "upscaler_1": "R-ESRGAN 2x+",
            "upscaling_resize": 2}
    answer = client.post("/sdapi/v1/extra-single-image", json=body)
    assert answer.status_code == 200, answer.text
    out = decoded(answer.json())
    direct = RestorationService().run(RestorationRequest("upscale", image, model=str(library["x2"]))).pixels
    assert out.size == (60, 40) and np.array_equal(np.asarray(out), direct)
    assert out.info["icc_profile"] == icc and [round(v) for v in out.info["dpi"]] == [600, 600]
    assert "Postprocess upscale by: 2, Postprocess upscaler: R-ESRGAN 2x+" in answer.json()["html_info"]


def test_sizes_follow_a1111s_rules(client):
    image = rm.photo(20, 30)
    # a ×4 model asked for ×3: one pass, then shrunk to exactly ×3
    assert decoded(extra(client, image, upscaler_1="tiny-compact-x4", upscaling_resize=3).json()).size == (90, 60)
    # scale to 50×50, cropped: scaled by the larger ratio (2.5 → 75×50), the centre kept
    out = decoded(extra(client, image, upscaler_1="Lanczos", resize_mode=1, upscaling_resize_w=50,
                        upscaling_resize_h=50, upscaling_crop=True).json())
    assert out.size == (50, 50)
    assert decoded(extra(client, image, upscaler_1="Lanczos", resize_mode=1, upscaling_resize_w=50,
                         upscaling_resize_h=50, upscaling_crop=False).json()).size == (75, 50)
    nearest = np.asarray(decoded(extra(client, image, upscaler_1="Nearest", upscaling_resize=2).json()))
    assert np.array_equal(nearest, image.repeat(2, axis=0).repeat(2, axis=1))
    untouched = extra(client, image, upscaler_1="None")  # no step asked: the image as it came
    assert np.array_equal(np.asarray(decoded(untouched.json())), image) and untouched.json()["html_info"] == ""


def test_a_second_upscaler_is_blended_in_by_its_visibility(client):
    image = rm.photo(20, 30)
    one = np.asarray(decoded(extra(client, image, upscaler_1="R-ESRGAN 2x+").json())).astype(int)
    two = np.asarray(decoded(extra(client, image, upscaler_1="Nearest").json())).astype(int)
    mixed = np.asarray(decoded(extra(client, image, upscaler_1="R-ESRGAN 2x+", upscaler_2="Nearest",
                                     extras_upscaler_2_visibility=0.25).json())).astype(int)
    assert np.abs(mixed - (one + 0.25 * (two - one))).max() <= 1


def test_faces_found_by_the_detector_are_restored_and_the_rest_kept(client, monkeypatch):
    from app.core import maskops
    from app.inference.restoration import detect, faces

    monkeypatch.setattr(faces, "FACE_SIZE", 64)  # the tiny model's working size (real ones: 512)
    service = client.app.state.restoration
    monkeypatch.setattr(service, "face_detector", lambda rgb: [Bounds(10, 12, 24, 28)])
    image = rm.photo(64, 64)
    answer = extra(client, image, gfpgan_visibility=1.0)
    assert answer.status_code == 200, answer.text
    out = np.asarray(decoded(answer.json()))
    face = detect.faces_mask([Bounds(10, 12, 24, 28)], 64, 64)
    outside = maskops.feather_full(face, extras.FACE_FEATHER) == 0
    assert np.array_equal(out[outside], image[outside]) and not np.array_equal(out[face > 0], image[face > 0])
    assert "GFPGAN visibility: 1" in answer.json()["html_info"]
    seen = []
    monkeypatch.setattr(service, "face_detector", lambda rgb: seen.append(rgb.shape) or [Bounds(20, 24, 48, 56)])
    both = extra(client, image, gfpgan_visibility=0.5, upscaler_1="Nearest", upscaling_resize=2, upscale_first=False)
    assert both.status_code == 200 and seen == [(128, 128, 3)]  # upscaled first, as A1111 ≥ 1.6 does


def test_restoring_faces_without_a_detector_is_a_400_saying_what_to_install(client):
    answer = extra(client, rm.photo(32, 32), gfpgan_visibility=0.5)
    assert answer.status_code == 400
    body = answer.json()
    assert body["field"] == "gfpgan_visibility" and "face_detection_yunet_2023mar.onnx" in body["error"]
    assert "/facedetection" in body["error"] and str(client.app.state.config.data_dir) not in body["error"]
    answer = extra(client, rm.photo(32, 32), codeformer_visibility=0.5)  # no CodeFormer file installed
    assert answer.status_code == 400 and answer.json()["field"] == "codeformer_visibility"


@pytest.mark.parametrize("fields, field", [
    ({"upscaler_1": "R-ESRGAN 4x+"}, "upscaler_1"),  # A1111's name, but its file is not installed
    ({"upscaler_1": "Lanczos", "upscaler_2": "../../etc/passwd"}, "upscaler_2"),
    ({"upscaler_1": "Lanczos", "upscaling_resize": 9}, "upscaling_resize"),
    ({"upscaler_1": "Lanczos", "upscaling_resize": 0}, "upscaling_resize"),
    ({"resize_mode": 2}, "resize_mode"),
    ({"gfpgan_visibility": 1.5}, "gfpgan_visibility"),
    ({"extras_upscaler_2_visibility": "half"}, "extras_upscaler_2_visibility"),
    ({"upscaling_crop": "yes"}, "upscaling_crop"),
    ({"image": ""}, "image"),
    ({"image": base64.b64encode(b"not an image").decode()}, "image"),
    ({"image": base64.b64encode(png_claiming(60000, 60000)).decode()}, "image"),  # the decode budget, from the header
])
def test_bad_fields_are_400s_naming_a1111s_field(client, fields, field):
    answer = client.post("/sdapi/v1/extra-single-image", json={"image": png_b64(scene(16)), **fields})
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field and answer.json()["error"]


def test_a_result_over_the_pixel_limit_is_refused_before_it_runs(client, monkeypatch):
    monkeypatch.setattr(extras, "MAX_PIXELS", 64 * 64)
    answer = extra(client, scene(32), upscaler_1="Lanczos", upscaling_resize=3)
    assert answer.status_code == 400 and answer.json()["field"] == "upscaling_resize"
    assert "96×96" in answer.json()["error"]
    answer = extra(client, scene(32), upscaler_1="Lanczos", resize_mode=1, upscaling_resize_w=65, upscaling_resize_h=64)
    assert answer.status_code == 400 and answer.json()["field"] == "upscaling_resize_w"


def test_a_model_pass_that_would_pass_the_pixel_limit_is_left_to_lanczos(client, monkeypatch):
    image = rm.photo(20, 30)
    monkeypatch.setattr(extras, "MAX_PIXELS", 5000)  # the ×2 target fits (60×40), the ×4 pass (120×80) would not
    by_model = extra(client, image, upscaler_1="tiny-compact-x4", upscaling_resize=2)
    by_lanczos = extra(client, image, upscaler_1="Lanczos", upscaling_resize=2)
    assert by_model.status_code == 200 and decoded(by_model.json()).size == (60, 40)
    assert np.array_equal(np.asarray(decoded(by_model.json())), np.asarray(decoded(by_lanczos.json())))


def test_a_batch_gives_each_image_the_same_steps(client, monkeypatch):
    images = [rm.photo(20, 30, seed=1), rm.photo(12, 16, seed=2)]
    body = {"imageList": [{"data": png_b64(p), "name": f"{i}.png"} for i, p in enumerate(images)],
            "upscaler_1": "R-ESRGAN 2x+", "upscaling_resize": 2}
    answer = client.post("/sdapi/v1/extra-batch-images", json=body)
    assert answer.status_code == 200, answer.text
    outs = [Image.open(io.BytesIO(base64.b64decode(i))) for i in answer.json()["images"]]
    singles = [decoded(extra(client, p, upscaler_1="R-ESRGAN 2x+", upscaling_resize=2).json()) for p in images]
    assert [o.size for o in outs] == [(60, 40), (32, 24)]
    assert all(np.array_equal(np.asarray(o), np.asarray(s)) for o, s in zip(outs, singles))
    bad = client.post("/sdapi/v1/extra-batch-images", json={**body, "imageList": [{"data": png_b64(images[0])}, {}]})
    assert bad.status_code == 400 and bad.json()["field"] == "imageList[1].data"
    monkeypatch.setattr("app.server.extras.MAX_PIXELS", 700)  # each fits, both together do not
    over = client.post("/sdapi/v1/extra-batch-images", json={**body, "upscaler_1": "None"})
    assert over.status_code == 413 and over.json()["field"] == "imageList"


def test_a_token_is_needed(client):
    answer = client.post("/sdapi/v1/extra-single-image", json={"image": png_b64(scene(16))},
                         headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 401
    assert client.get("/sdapi/v1/upscalers", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_run_waits_its_turn_behind_a_generation_in_the_one_queue(library, tmp_path):
    """A running generation holds the queue's worker: the upscale waits (and a third request finds
    the queue full: 429), and runs once the generation is done."""
    backend = GatedBackend()
    config = ServerConfig(data_dir=tmp_path, model="builtin:telea", tokens=(TOKEN,), queue_depth=1)
    app = create_app(config, GenerationService(loader=lambda ref, options: backend))
    answers: dict[str, requests.Response] = {}
    with TestClient(app, base_url="http://127.0.0.1", headers=AUTH) as client:
        def generate():
            answers["generate"] = client.post("/sdapi/v1/img2img", json={
                "init_images": [png_b64(scene())], "mask": png_b64(centre_mask()), "prompt": "x"})

        def upscale():
            answers["upscale"] = extra(client, rm.photo(20, 30), upscaler_1="R-ESRGAN 2x+")

        threads = [threading.Thread(target=generate, daemon=True), threading.Thread(target=upscale, daemon=True)]
        threads[0].start()
        assert backend.started.wait(CAP_S)
        threads[1].start()
        queue = app.state.queue
        deadline = time.monotonic() + CAP_S
        while queue.waiting() != 1:  # the upscale is queued behind the generation
            assert time.monotonic() < deadline, "the upscale never reached the queue"
            time.sleep(0.01)
        full = extra(client, rm.photo(20, 30), upscaler_1="Lanczos")
        assert full.status_code == 429 and "Retry-After" in full.headers
        assert "upscale" not in answers
        backend.gate.set()
        for t in threads:
            t.join(CAP_S)
    assert answers["generate"].status_code == 200
    assert answers["upscale"].status_code == 200 and decoded(answers["upscale"].json()).size == (60, 40)


def test_a_run_shows_in_progress_and_interrupt_stops_it(client, monkeypatch):
    from app.inference.engine import Cancelled

    started = threading.Event()

    def endless(service, work, progress, cancelled):  # a long upscale: runs until it is stopped
        progress(1, 4)
        started.set()
        deadline = time.monotonic() + CAP_S
        while not cancelled():
            assert time.monotonic() < deadline, "never interrupted"
            time.sleep(0.01)
        raise Cancelled()

    monkeypatch.setattr(extras, "run_extras", endless)
    answers = {}
    thread = threading.Thread(target=lambda: answers.setdefault("run", extra(client, scene(16), upscaler_1="Lanczos")),
                              daemon=True)
    thread.start()
    assert started.wait(CAP_S)
    progress = client.get("/sdapi/v1/progress").json()
    assert progress["state"]["job_count"] == 1 and progress["progress"] == 0.25
    assert client.post("/sdapi/v1/interrupt").json() == {}
    thread.join(CAP_S)
    assert answers["run"].status_code == 409 and "canceled" in answers["run"].json()["error"]


def test_webuiapi_extra_single_image_upscalers_and_face_restorers(library, tmp_path):
    config = ServerConfig(data_dir=tmp_path, model="builtin:telea", tokens=(TOKEN,))
    with running_server(config) as server:
        api = webuiapi.WebUIApi(host="127.0.0.1", port=server.port)
        api.session.headers.update(AUTH)
        image = rm.photo(20, 30)
        result = api.extra_single_image(Image.fromarray(image), upscaler_1="tiny-compact-x4", upscaling_resize=4)
        assert result.image.size == (120, 80) and "Postprocess upscale by: 4" in result.info
        assert "R-ESRGAN 2x+" in {u["name"] for u in api.get_upscalers()}
        assert [r["name"] for r in api.get_face_restorers()] == ["GFPGAN"]
        with pytest.raises(RuntimeError, match="upscaler_1"):
            api.extra_single_image(Image.fromarray(image), upscaler_1="LDSR")
        batch = api.extra_batch_images([Image.fromarray(image)] * 2, upscaler_1="Nearest", upscaling_resize=2)
        assert [i.size for i in batch.images] == [(60, 40), (60, 40)]
