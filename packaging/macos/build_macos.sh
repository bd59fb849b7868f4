#!/usr/bin/env bash
# Build "Inpaint Studio.app" and a .dmg on macOS (Apple silicon or Intel).
#   packaging/macos/build_macos.sh [mps|classical]
# Needs: Python 3.11 with the app installed for the variant (mps: pip install -c constraints.txt -e ".[diffusion,packaging]";
# the macOS torch wheel runs on the Apple GPU through MPS). Output (git-ignored):
#   dist/Inpaint Studio.app, dist/InpaintStudio-<version>-macos-<arch>-<variant>.dmg
# Signing/notarisation (for distribution outside your own Macs), after the build:
#   codesign --deep --force --options runtime --sign "Developer ID Application: …" "dist/Inpaint Studio.app"
#   xcrun notarytool submit dist/*.dmg --keychain-profile … --wait && xcrun stapler staple dist/*.dmg
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
export INPAINT_STUDIO_VARIANT=${1:-${INPAINT_STUDIO_VARIANT:-mps}}
VERSION=$("$PY" -c 'import sys; sys.path.insert(0, "packaging"); import bundle_config as c; print(c.app_version())')
ARCH=$(uname -m)
APP="dist/Inpaint Studio.app"
DMG="dist/InpaintStudio-$VERSION-macos-$ARCH-$INPAINT_STUDIO_VARIANT.dmg"

# On macOS the spec adds a BUNDLE step: dist/InpaintStudio/ plus the .app wrapping it.
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath "build/pyinstaller-$INPAINT_STUDIO_VARIANT" \
  packaging/inpaint-studio.spec
QT_QPA_PLATFORM=offscreen "$APP/Contents/MacOS/inpaint-studio" --self-test

STAGING=$(mktemp -d)
cp -R "$APP" "$STAGING/"
ln -s /Applications "$STAGING/Applications"
cp LICENSE THIRD_PARTY_NOTICES.md "$STAGING/"
rm -f "$DMG"
hdiutil create -volname "Inpaint Studio $VERSION" -srcfolder "$STAGING" -fs HFS+ -format UDZO -ov "$DMG"
rm -rf "$STAGING"
echo "built $DMG ($(du -sh "$DMG" | cut -f1))"
