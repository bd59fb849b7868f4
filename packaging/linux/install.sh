#!/bin/sh
# Install this Inpaint Studio bundle for the current user (no root): copies it to
# ~/.local/opt/InpaintStudio, links ~/.local/bin/inpaint-studio and adds the menu entry and icon.
#   ./install.sh              install (or update)
#   ./install.sh --uninstall  remove what install.sh added
# PREFIX=/opt ./install.sh installs system-wide (run as root); the menu entry then goes to /usr/share.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-$HOME/.local}
if [ "$PREFIX" = "$HOME/.local" ]; then
  DEST=$PREFIX/opt/InpaintStudio; BIN=$PREFIX/bin; SHARE=${XDG_DATA_HOME:-$HOME/.local/share}
else
  DEST=$PREFIX/InpaintStudio; BIN=/usr/local/bin; SHARE=/usr/share
fi
APPS=$SHARE/applications
ICONS=$SHARE/icons/hicolor/256x256/apps

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$BIN/inpaint-studio" "$APPS/inpaint-studio.desktop" "$ICONS/inpaint-studio.png"
  rm -rf "$DEST"
  command -v update-desktop-database >/dev/null && update-desktop-database "$APPS" 2>/dev/null || true
  echo "Inpaint Studio removed."
  exit 0
fi

mkdir -p "$DEST" "$BIN" "$APPS" "$ICONS"
if [ "$HERE" != "$DEST" ]; then
  rm -rf "$DEST"
  cp -a "$HERE" "$DEST"
fi
ln -sf "$DEST/inpaint-studio" "$BIN/inpaint-studio"
cp "$DEST/inpaint-studio.png" "$ICONS/inpaint-studio.png"
# The menu entry runs the installed copy by its absolute path (~/.local/bin may not be on PATH).
sed -e "s|^Exec=inpaint-studio|Exec=\"$DEST/inpaint-studio\"|" -e "s|^TryExec=inpaint-studio|TryExec=$DEST/inpaint-studio|" \
  "$DEST/inpaint-studio.desktop" > "$APPS/inpaint-studio.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database "$APPS" 2>/dev/null || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q "$SHARE/icons/hicolor" 2>/dev/null || true
echo "Inpaint Studio installed in $DEST; run 'inpaint-studio' or use the menu entry."
"$DEST/inpaint-studio" --self-test >/dev/null 2>&1 && echo "Self-test passed." || echo "Warning: '$DEST/inpaint-studio --self-test' failed; run it to see why." >&2
