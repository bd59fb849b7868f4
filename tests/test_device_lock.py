"""A restoration and a generation never run at once on one device (issue 27): the restoration
service a generation service hands out takes its device lock. Fake backends count the runs in
flight; the tests wait for the second run to be blocked on the lock (a condition), never sleep."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app.core.params import GenerationParams
from app.inference.restoration import process
from app.service.generation import GenerationRequest, GenerationService
from app.service.restoration import RestorationRequest, RestorationService
from doubles import paint_seeds

CAP_S = 20


class InFlight:
    """Counts runs on the 'device'; each holds it until its gate opens."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.entered: dict[str, threading.Event] = {"generate": threading.Event(), "restore": threading.Event()}
        self.gates: dict[str, threading.Event] = {"generate": threading.Event(), "restore": threading.Event()}
        self.order: list[str] = []

    def run(self, kind: str) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.order.append(kind)
        self.entered[kind].set()
        try:
            assert self.gates[kind].wait(CAP_S), "the test never opened the gate"
        finally:
            with self.lock:
                self.now -= 1


@pytest.fixture
def device(monkeypatch):
    flight = InFlight()

    class Backend:
        name = "test:in-flight"
        native_resolution = True

        def generate(self, request, progress, cancelled):
            flight.run("generate")
            return paint_seeds(request)

    def fake_model(descriptor, pixels, **kwargs):
        flight.run("restore")
        return pixels.copy()

    generation = GenerationService(loader=lambda ref, options: Backend())
    restoration = generation.restoration
    summary = SimpleNamespace(path=Path("fake-denoiser.safetensors"), architecture="fake", scale=1, purpose="restore")
    monkeypatch.setattr(restoration, "resolve", lambda operation, model: summary)
    monkeypatch.setattr(restoration, "_model", lambda path, device: object())
    monkeypatch.setattr(process, "apply_image_model", fake_model)
    return flight, generation, restoration


def _generate(generation: GenerationService) -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    generation.run(GenerationRequest(GenerationParams(prompt="a wall", model="test:in-flight"), image, mask))


def _restore(restoration: RestorationService) -> None:
    restoration.run(RestorationRequest("denoise", np.zeros((32, 32, 3), np.uint8), device="cpu"))


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + CAP_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


@pytest.mark.parametrize("first", ["generate", "restore"])
def test_the_second_run_waits_for_the_first_on_the_shared_device_lock(device, first):
    flight, generation, restoration = device
    second = "restore" if first == "generate" else "generate"
    calls = {"generate": lambda: _generate(generation), "restore": lambda: _restore(restoration)}
    errors: list[BaseException] = []

    def thread(kind):
        def body():
            try:
                calls[kind]()
            except BaseException as exc:  # reported by the test, not lost in the thread
                errors.append(exc)
        return threading.Thread(target=body, daemon=True)

    threads = [thread(first), thread(second)]
    threads[0].start()
    assert flight.entered[first].wait(CAP_S)
    threads[1].start()
    _wait_until(lambda: generation.device_lock.waiting == 1, f"the {second} waits for the device")
    assert not flight.entered[second].is_set() and flight.now == 1
    flight.gates[first].set()
    assert flight.entered[second].wait(CAP_S)
    flight.gates[second].set()
    for t in threads:
        t.join(CAP_S)
    assert not errors, errors
    assert flight.order == [first, second] and flight.most == 1


def test_one_restoration_service_per_generation_service_and_asking_never_waits(device):
    flight, generation, restoration = device
    threading.Thread(target=_generate, args=(generation,), daemon=True).start()
    assert flight.entered["generate"].wait(CAP_S)
    assert generation.restoration is restoration  # answered while a generation holds the device
    flight.gates["generate"].set()
    assert RestorationService()._lock is not generation.device_lock  # a service of its own: its own device


def test_releasing_the_generation_service_frees_the_restoration_model_on_its_device():
    """After running out of memory (or when asked) both models on the device are let go."""
    generation = GenerationService(loader=lambda ref, options: None)
    restoration = generation.restoration
    restoration._descriptor, restoration._key = object(), ("upscaler.safetensors", "cpu")
    generation.release()
    assert restoration._descriptor is None and restoration._key is None


#: The only places that build a `RestorationService` of their own: the generation service (whose
#: `restoration` shares its device lock), the restore commands (a process that generates nothing)
#: and the server's fallback for a cluster, whose generations run on other machines.
OWN_RESTORATION_SERVICE = {"app/service/generation.py", "app/cli/restore.py", "app/server/app.py"}


def test_front_ends_take_their_restoration_service_from_the_generation_service():
    # Tokens, not `ast`: after a test that ends in a RecursionError (the server's deep-JSON
    # attacks), CPython 3.11's ast.parse can fail with "AST constructor recursion depth mismatch".
    import io
    import tokenize

    root = Path(__file__).resolve().parents[1]
    builders = set()
    for path in (root / "app").rglob("*.py"):
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
                  if t.type in (tokenize.NAME, tokenize.OP)]
        if any(a.string == "RestorationService" and b.string == "(" for a, b in zip(tokens, tokens[1:])):
            builders.add(path.relative_to(root).as_posix())
    assert builders <= OWN_RESTORATION_SERVICE, (
        f"{sorted(builders - OWN_RESTORATION_SERVICE)} build a RestorationService of their own: take "
        "GenerationService.restoration instead (e.g. the worker's service.restoration), so a restoration "
        "and a generation never run at once on one device")
