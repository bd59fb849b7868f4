#!/usr/bin/env bash
# Build the one-folder Linux bundle, run its self-test and a serve smoke test, and archive it.
#
#   packaging/build_linux.sh [classical|cpu|cuda]      (default: cpu/cuda per installed torch, classical without torch)
#
# Output (git-ignored): dist/InpaintStudio/ (the bundle), dist/InpaintStudio-<version>-linux-<arch>-<variant>.tar.gz,
# and dist/InpaintStudio-<version>-<arch>-<variant>.AppImage when appimagetool is on PATH. Work files: build/pyinstaller-<variant>/.
# Needs: the app's dependencies for the variant and PyInstaller (pip install -c constraints.txt -e ".[packaging]").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}

VARIANT=${1:-${INPAINT_STUDIO_VARIANT:-}}
if [ -z "$VARIANT" ]; then
  VARIANT=$("$PY" -c 'import sys; sys.path.insert(0, "packaging"); import bundle_config as c; print(c.default_variant())')
fi
export INPAINT_STUDIO_VARIANT=$VARIANT
VERSION=$("$PY" -c 'import sys; sys.path.insert(0, "packaging"); import bundle_config as c; print(c.app_version())')
ARCH=$(uname -m)
NAME=InpaintStudio
BUNDLE=$ROOT/dist/$NAME
ARCHIVE=$ROOT/dist/$NAME-$VERSION-linux-$ARCH-$VARIANT.tar.gz

"$PY" -c 'import PyInstaller' 2>/dev/null || { echo "PyInstaller is missing: pip install -c constraints.txt -e '.[packaging]'" >&2; exit 2; }

echo "== building Inpaint Studio $VERSION, variant $VARIANT ($ARCH)"
t0=$(date +%s)
# nice: a build saturates every core for minutes; keep the machine usable.
nice -n 10 "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller-$VARIANT" \
  packaging/inpaint-studio.spec
t1=$(date +%s)

# Desktop integration travels inside the bundle; install.sh puts it in place.
cp packaging/linux/inpaint-studio.desktop "$BUNDLE/"
cp resources/icon.png "$BUNDLE/inpaint-studio.png"
install -m 755 packaging/linux/install.sh "$BUNDLE/install.sh"
cp LICENSE THIRD_PARTY_NOTICES.md "$BUNDLE/"
printf '%s\n' "Inpaint Studio $VERSION ($VARIANT build for Linux $ARCH)" "" \
  "Run:      ./inpaint-studio            (the editor)" \
  "          ./inpaint-studio --help     (headless commands)" \
  "Install:  ./install.sh                (menu entry + ~/.local/bin/inpaint-studio; ./install.sh --uninstall)" \
  "Check:    ./inpaint-studio --self-test" > "$BUNDLE/README.txt"

echo "== self-test of the bundle (offscreen, clean environment, outside the checkout)"
SELFTEST_DIR=$(mktemp -d)
( cd "$SELFTEST_DIR" && env -i HOME="$SELFTEST_DIR" PATH=/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen \
    "$BUNDLE/inpaint-studio" --self-test "$SELFTEST_DIR/selftest.png" )
( cd "$SELFTEST_DIR" && env -i HOME="$SELFTEST_DIR" PATH=/usr/bin:/bin "$BUNDLE/inpaint-studio" --version ) | sed 's/^/   /'
rm -rf "$SELFTEST_DIR"
echo "== serve smoke test of the bundle (127.0.0.1, a free port, one inpainting request; serve --ray refused)"
"$PY" packaging/serve_smoke.py --no-ray "$BUNDLE/inpaint-studio"
t2=$(date +%s)

echo "== archiving"
if command -v pigz >/dev/null; then GZ="pigz -6"; else GZ="gzip -6"; fi
tar -C "$ROOT/dist" -cf - "$NAME" | nice -n 10 $GZ > "$ARCHIVE.part" && mv "$ARCHIVE.part" "$ARCHIVE"

if command -v appimagetool >/dev/null; then
  APPDIR=$ROOT/build/$NAME.AppDir
  rm -rf "$APPDIR" && mkdir -p "$APPDIR/usr/lib"
  cp -a "$BUNDLE" "$APPDIR/usr/lib/$NAME"
  cp packaging/linux/inpaint-studio.desktop resources/icon.png "$APPDIR/"
  mv "$APPDIR/icon.png" "$APPDIR/inpaint-studio.png"
  printf '#!/bin/sh\nexec "$(dirname "$(readlink -f "$0")")/usr/lib/%s/inpaint-studio" "$@"\n' "$NAME" > "$APPDIR/AppRun"
  chmod +x "$APPDIR/AppRun"
  ARCH=$ARCH appimagetool "$APPDIR" "$ROOT/dist/$NAME-$VERSION-$ARCH-$VARIANT.AppImage"
else
  echo "   (appimagetool not on PATH: no AppImage; the .tar.gz is the Linux download)"
fi
t3=$(date +%s)

echo "== done: variant $VARIANT"
echo "   build $((t1 - t0)) s, self-test + serve smoke $((t2 - t1)) s, archive $((t3 - t2)) s"
echo "   bundle  $(du -sh "$BUNDLE" | cut -f1)  $BUNDLE ($(find "$BUNDLE" -type f | wc -l) files)"
echo "   archive $(du -sh "$ARCHIVE" | cut -f1)  $ARCHIVE"
