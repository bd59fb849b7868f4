"""The packaging recipes, checked in milliseconds (no PyInstaller, no build): a broken spec, a
desktop entry that menus reject, or an installer pointing at a missing icon is caught here
instead of at release time. The real build and its self-test are `packaging/build_linux.sh`
(see packaging/README.md for the command and the measured times)."""

from __future__ import annotations

import ast
import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import app

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
sys.path.insert(0, str(PACKAGING))
import bundle_config as cfg  # noqa: E402


def test_spec_is_valid_python_and_uses_the_shared_config():
    source = (PACKAGING / "inpaint-studio.spec").read_text(encoding="utf-8")
    tree = ast.parse(source)
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE"} <= called
    assert "launcher.py" in source and (PACKAGING / "launcher.py").is_file()
    for name in ("variant", "check_environment", "resource_datas", "license_datas", "version_metadata_dists", "keep_data_file"):
        assert f"cfg.{name}(" in source and callable(getattr(cfg, name))


def test_launcher_runs_the_same_main_as_python_dash_m_app():
    tree = ast.parse((PACKAGING / "launcher.py").read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert any(n.module == "app.__main__" and n.names[0].name == "main" for n in imports)


def test_variants_exclude_and_include_the_right_stacks():
    classical = cfg.variant("classical")
    assert not classical.diffusion
    assert {"torch", "diffusers", "transformers", "tensorboard", "torchvision"} <= set(classical.excludes)
    for name in ("cpu", "cuda", "mps"):
        v = cfg.variant(name)
        assert v.diffusion and "torch" not in v.excludes and "diffusers" not in v.excludes
        assert {"tensorboard", "torchvision", "pytest", "triton"} <= set(v.excludes)
        assert {"torch", "diffusers", "transformers"} <= set(v.dists)
    assert not any(e == "app" or e.startswith("app.") for e in cfg.COMMON_EXCLUDES + cfg.CLASSICAL_EXCLUDES)
    with pytest.raises(ValueError, match="unknown bundle variant 'gpu'"):
        cfg.variant("gpu")


def test_desktop_bundles_leave_ray_out():
    for name in cfg.VARIANTS:
        assert set(cfg.CLUSTER_EXCLUDES) <= set(cfg.variant(name).excludes)
    assert "ray" in cfg.CLUSTER_EXCLUDES and "PySide6.QtNetwork" in cfg.COMMON_EXCLUDES
    # transformers and huggingface_hub import yaml: only the classical variant may drop it
    assert "yaml" in cfg.variant("classical").excludes
    assert all("yaml" not in cfg.variant(name).excludes for name in cfg.DIFFUSION_VARIANTS)


def _imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_app_imports_nothing_the_bundles_leave_out():
    """An exclude is safe only while no app module imports it. Two exceptions, each handling its
    absence: `serve --ray` imports Ray (ray_app, ray_start) and says in one line what to do when it is missing
    (tests/test_ray_deploy.py); spandrel's import tries torchvision and stands in for the three
    names it needs when it is missing or broken (tests/test_restoration_import.py)."""
    left_out = set(cfg.COMMON_EXCLUDES + cfg.CLUSTER_EXCLUDES) | {"yaml"}
    may_import = {"ray": {ROOT / "app" / "server" / "ray_app.py", ROOT / "app" / "server" / "ray_start.py",
                          ROOT / "app" / "cli" / "serve.py"},
                  "torchvision": {ROOT / "app" / "inference" / "restoration" / "spandrel_import.py"}}
    offending = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for name in _imports_of(path):
            hit = next((e for e in left_out if name == e or name.startswith(e + ".")), None)
            if hit and path not in may_import.get(hit, ()):
                offending.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offending, offending


def test_serve_works_without_what_the_classical_bundle_leaves_out():
    """packaging/serve_smoke.py (what build_linux.sh runs against the bundle), here against the
    checkout with every classical exclude made unimportable: the server starts on 127.0.0.1, one
    inpainting request comes back right, and `serve --ray` refuses in one line."""
    blocked = sorted(cfg.variant("classical").excludes)
    launcher = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.modules.update(dict.fromkeys({blocked!r})); "
                "from app.__main__ import main; sys.exit(main())")
    proc = subprocess.run([sys.executable, str(PACKAGING / "serve_smoke.py"), "--no-ray", sys.executable, "-c", launcher],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "serve smoke test OK" in proc.stdout and "serve --ray refused in one line" in proc.stdout


def test_bundle_data_exists_and_licence_files_do_not_collide():
    datas = cfg.resource_datas()
    for source, _ in datas:
        assert Path(source).exists(), source
    resources = Path(dict((d, s) for s, d in datas)["resources"])
    for name in ("sample.png", "icon.png", "icon.ico", "icon.icns"):
        assert (resources / name).is_file()
    licences = cfg.license_datas(cfg.CORE_DISTS + cfg.DIFFUSION_DISTS)
    targets = [f"{dest}/{Path(src).name}" for src, dest in licences]
    assert len(targets) == len(set(targets))
    assert any(t.startswith("licenses/numpy/") for t in targets)
    assert all(Path(src).is_file() for src, _ in licences)


def test_qt_translations_filter_keeps_only_qtbase():
    assert cfg.keep_data_file("PySide6/Qt/translations/qtbase_de.qm")
    assert not cfg.keep_data_file("PySide6/Qt/translations/qtdeclarative_de.qm")
    assert cfg.keep_data_file("PySide6/Qt/plugins/platforms/libqoffscreen.so")
    assert cfg.keep_data_file("resources/sample.png")


def test_versions_come_from_the_app():
    assert cfg.app_version() == app.__version__
    info = cfg.windows_version_info("1.2.3")
    ast.parse(info, mode="eval")  # PyInstaller evaluates this text as one expression
    assert "filevers=(1, 2, 3, 0)" in info and "'ProductVersion', '1.2.3'" in info
    plist = cfg.mac_info_plist(app.__version__)
    assert plist["CFBundleShortVersionString"] == app.__version__


def test_default_variant_follows_the_installed_torch():
    if cfg.installed_torch() is None:
        assert cfg.default_variant() == "classical"
    else:
        expected = "mps" if sys.platform == "darwin" else ("cuda" if cfg.torch_has_cuda() else "cpu")
        assert cfg.default_variant() == expected
        assert cfg.check_environment(cfg.variant(expected)) == []


DESKTOP_REQUIRED = {"Type": "Application", "Name": "Inpaint Studio", "Icon": "inpaint-studio", "Terminal": "false"}


def test_desktop_entry_is_valid():
    path = PACKAGING / "linux" / "inpaint-studio.desktop"
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    assert parser.sections() == ["Desktop Entry"]
    entry = parser["Desktop Entry"]
    for key, value in DESKTOP_REQUIRED.items():
        assert entry[key] == value
    assert entry["Exec"].split()[0] == cfg.CONSOLE_EXE and entry["Exec"].split()[1] in ("%F", "%f", "%U", "%u")
    for key in ("Categories", "MimeType", "Keywords"):
        assert entry[key].endswith(";"), f"{key} must end with ';'"
    assert set(entry["Categories"].split(";")[:-1]) >= {"Graphics"}
    assert set(entry["MimeType"].rstrip(";").split(";")) == {"image/png", "image/jpeg", "image/tiff", "image/webp"}
    known = {"Type", "Version", "Name", "GenericName", "Comment", "Exec", "TryExec", "Icon", "Terminal",
             "StartupNotify", "StartupWMClass", "Categories", "MimeType", "Keywords"}
    assert set(entry) <= known
    if shutil.which("desktop-file-validate"):
        proc = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0 and "error" not in proc.stdout.lower(), proc.stdout


def test_linux_scripts_parse_and_do_what_the_readme_says():
    script = PACKAGING / "build_linux.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert subprocess.run(["sh", "-n", str(PACKAGING / "linux" / "install.sh")]).returncode == 0
    assert subprocess.run(["bash", "-n", str(PACKAGING / "macos" / "build_macos.sh")]).returncode == 0
    text = script.read_text(encoding="utf-8")
    assert "set -euo pipefail" in text and "packaging/inpaint-studio.spec" in text
    assert '"$BUNDLE/inpaint-studio" --self-test' in text
    assert 'packaging/serve_smoke.py --no-ray "$BUNDLE/inpaint-studio"' in text
    assert "inpaint-studio.desktop" in text and "inpaint-studio.png" in text  # what install.sh expects
    install = (PACKAGING / "linux" / "install.sh").read_text(encoding="utf-8")
    assert "inpaint-studio.desktop" in install and "inpaint-studio.png" in install
    readme = (PACKAGING / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^packaging/build_linux\.sh classical", readme, re.M)
    for variant in cfg.VARIANTS:
        assert f"`{variant}`" in readme
    # build outputs stay out of git
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "build/" in ignored and "dist/" in ignored


def _iss_value(text: str, key: str) -> str:
    match = re.search(rf"^{key}=(.+)$", text, re.M)
    assert match, key
    return match.group(1).strip()


def test_inno_setup_script_points_at_real_files():
    iss = (PACKAGING / "windows" / "inpaint-studio.iss").read_text(encoding="utf-8")
    for section in ("[Setup]", "[Files]", "[Icons]", "[Run]"):
        assert section in iss
    here = PACKAGING / "windows"
    root = "..\\.."
    for key in ("LicenseFile", "SetupIconFile"):
        rel = _iss_value(iss, key).replace("{#Root}", root).replace("\\", "/")
        assert (here / rel).resolve().is_file(), key
    assert 'Source: "{#Root}\\dist\\' + cfg.BUNDLE_DIR + '\\*"' in iss
    assert f'#define AppExe "{cfg.WINDOWED_EXE}.exe"' in iss and f'#define CliExe "{cfg.CONSOLE_EXE}.exe"' in iss
    assert "--self-test" in iss
    ps1 = (PACKAGING / "windows" / "build_windows.ps1").read_text(encoding="utf-8")
    assert "/DAppVersion=$Version" in ps1 and "inpaint-studio.iss" in ps1 and "--self-test" in ps1


def test_icons_are_complete():
    resources = ROOT / "resources"
    png = Image.open(resources / "icon.png")
    assert png.size == (256, 256) and png.mode == "RGBA"
    ico = Image.open(resources / "icon.ico")
    assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])
    icns = Image.open(resources / "icon.icns")
    assert icns.format == "ICNS" and max(icns.info["sizes"])[0] >= 256


def test_licence_and_notices_cover_what_is_bundled():
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    notices = (ROOT / "THIRD_PARTY_NOTICES.md").read_text(encoding="utf-8").lower()
    for dist in cfg.CORE_DISTS + cfg.DIFFUSION_DISTS:
        assert dist.lower() in notices, dist
    assert "lgpl-3.0" in notices and "sample.png" in notices
    for name in ("LGPL-3.0.txt", "GPL-3.0.txt"):
        assert (PACKAGING / "licenses" / name).stat().st_size > 5000


def test_wheel_ships_the_resources(tmp_path):
    """A non-editable install needs resources/ (SD 1.5 configs and tokenizer for single-file
    models, icons, the self-test sample): pyproject maps it into the wheel as app/resources."""
    import zipfile

    root = ROOT
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(root)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("inpaint_studio-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(root / "resources").as_posix() for p in (root / "resources").rglob("*") if p.is_file()}
    assert shipped and {f"app/resources/{n}" for n in shipped} <= names


def test_every_package_ships_in_the_wheel():
    """pyproject lists packages by hand (resources/ is mapped in as app.resources); a new
    subpackage missing there would work from a checkout and vanish from the wheel."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "app").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
