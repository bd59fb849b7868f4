"""The deployment files of docs/DEPLOY.md: the Serve config file is one `serve run` accepts (Ray's
own schema, and its import path builds our application with its args), and the KubeRay RayService
carries the same application, GPU workers and a shared volume. (Its check against KubeRay's CRD
schema is deploy/check_rayservice.py: the CRD is KubeRay's file, not in this repository.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from app.server import ray_app
from app.server.config import ConfigError

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def check_serve_config(text: str, tmp_path: Path) -> ServeDeploySchema:
    config = ServeDeploySchema.model_validate(yaml.safe_load(text))
    (app,) = config.applications
    assert app.import_path == "app.server.ray_app:build"
    module, _, name = app.import_path.partition(":")
    assert getattr(ray_app, name) is ray_app.build and module == ray_app.__name__
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("s3cret\n")
    args = dict(app.args, data=str(tmp_path / "jobs"), model="builtin:telea", tokens=str(tokens))
    built = ray_app.build(args)  # what `serve run` calls with the file's args (paths made local)
    ingress = built._bound_deployment
    assert ingress.name == ray_app.INGRESS and ingress.init_args[0].tokens == ("s3cret",)
    assert ingress.init_args[1]._bound_deployment.name == ray_app.GENERATOR
    sections = {d.name: d for d in app.deployments}
    assert set(sections) == {ray_app.GENERATOR, ray_app.INGRESS}
    assert sections[ray_app.GENERATOR].ray_actor_options.num_gpus == 1
    generator = ingress.init_args[1]._bound_deployment
    batching = generator.init_args[2]  # the replicas gather a batch's worth: the section lets them take it
    assert batching.enabled and sections[ray_app.GENERATOR].max_ongoing_requests == batching.max_items == 8
    assert ingress.init_args[0].concurrency == app.args["max_replicas"] * 8  # the ingress sends that many
    return config


def test_serve_config_file_is_valid_and_builds_the_app(tmp_path):
    check_serve_config((DEPLOY / "serve-config.yaml").read_text(), tmp_path)


def test_rayservice_carries_the_same_app_on_gpu_workers(tmp_path):
    manifest = yaml.safe_load((DEPLOY / "rayservice.yaml").read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayService"
    spec = manifest["spec"]
    serve_config = check_serve_config(spec["serveConfigV2"], tmp_path)
    generator = next(d for d in serve_config.applications[0].deployments if d.name == ray_app.GENERATOR)
    (workers,) = spec["rayClusterConfig"]["workerGroupSpecs"]
    (container,) = workers["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert generator.autoscaling_config["max_replicas"] == workers["maxReplicas"], "one generator replica per GPU node"
    head = spec["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    for pod in (head, workers["template"]["spec"]):  # every node sees the same job records and model
        assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == "/mnt/shared"
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "inpaint-shared"
    assert spec["rayClusterConfig"]["rayVersion"] == __import__("ray").__version__


def test_serve_ray_flags_are_checked_before_anything_starts(tmp_path, capsys):
    from app.cli.main import main as cli_main

    code = cli_main(["serve", "--ray", "--data", str(tmp_path), "--model", "builtin:telea",
                     "--min-replicas", "3", "--max-replicas", "2"])
    assert code == 2
    assert "--min-replicas 3 / --max-replicas 2: give 1 ≤ min ≤ max" in capsys.readouterr().err


@pytest.mark.parametrize("frozen", [False, True], ids=["pip-install", "desktop-bundle"])
def test_serve_ray_without_ray_says_what_to_do_in_one_line(tmp_path, capsys, monkeypatch, frozen):
    # The desktop bundles leave Ray out (packaging/bundle_config.py): `import ray` fails there.
    from app.cli.main import main as cli_main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    if frozen:
        monkeypatch.setattr(sys, "frozen", True, raising=False)
    code = cli_main(["serve", "--ray", "--data", str(tmp_path), "--model", "builtin:telea"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "Ray Serve" in err and "'cluster' extra" in err and "container image (docs/DEPLOY.md)" in err
    if frozen:
        assert "desktop bundle leaves out" in err and "-e \".[cluster,diffusion]\"" in err
        assert "plain 'serve' (without --ray) works from this bundle" in err
    else:
        assert "this installation lacks" in err and "pip install -e \".[cluster]\"" in err


def test_serve_config_without_tokens_is_refused(tmp_path):
    # The file's proxy listens on 0.0.0.0 (its http_options): build() takes that as its default host.
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0 without API tokens"):
        ray_app.build({"data": str(tmp_path / "jobs"), "model": "builtin:telea"})
    built = ray_app.build({"data": str(tmp_path / "jobs"), "model": "builtin:telea", "host": "127.0.0.1",
                           "allowed_hosts": ["inpaint.example.com"]})
    assert built._bound_deployment.init_args[0].allowed_hosts == {"inpaint.example.com"}
